"""Names and limits shared by the stacks, the Lambdas, the local stack and the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal
from uuid import UUID

Environment = Literal["dev", "prod"]
ENVIRONMENTS: Final[tuple[Environment, ...]] = ("dev", "prod")

SERVICE_NAME: Final = "Fibonacci Orquestrador"
POWERTOOLS_SERVICE: Final = "alquimista"
METRICS_NAMESPACE: Final = "Alquimista"

MAX_BODY_BYTES: Final = 1024 * 1024
DB_CONNECT_TIMEOUT_S: Final = 2
HEALTH_STATEMENT_TIMEOUT_MS: Final = 1500
SECRET_CACHE_SECONDS: Final = 300

TRIAL_DURATION_DAYS: Final = 14
TRIAL_MAX_USAGE: Final = 100
WEBHOOK_TOLERANCE_S: Final = 5 * 60
WEBHOOK_PROVIDERS: Final = ("stripe", "mercadopago")
COMMERCIAL_REQUESTS_PER_IP: Final = 5
COMMERCIAL_REQUESTS_WINDOW_S: Final = 60 * 60
AUDIT_ANCHOR_RETENTION_DAYS: Final = 400
AUDIT_VERIFY_FAILURES_METRIC: Final = "AuditVerifyFailures"
AUDIT_ANCHOR_AGE_METRIC: Final = "AuditAnchorAgeSeconds"
# Policies and approvals (EMF, dimension ``service``): evaluations by effect and whether a rule
# decided, approval latency (created -> decided), the sweeper's expirations, escalations and
# the backlog it sees.
POLICY_EVALUATIONS_METRIC: Final = "PolicyEvaluations"  # + the effect, e.g. ...Block
POLICY_RULE_HIT_METRIC: Final = "PolicyRuleHit"
POLICY_DEFAULT_METRIC: Final = "PolicyDefaultApplied"
APPROVAL_LATENCY_METRIC: Final = "ApprovalLatencySeconds"
APPROVALS_EXPIRED_METRIC: Final = "ApprovalsExpired"
APPROVALS_ESCALATED_METRIC: Final = "ApprovalsEscalated"
APPROVALS_PENDING_METRIC: Final = "ApprovalsPending"
APPROVAL_OLDEST_PENDING_AGE_METRIC: Final = "ApprovalOldestPendingAgeSeconds"
# Open LGPD data subject requests due within DSR_ALARM_WINDOW_HOURS (the DSR deadline alarm).
DSR_DUE_SOON_METRIC: Final = "LeadsDsrDueSoon"
DSR_ALARM_WINDOW_HOURS: Final = 48
# Unauthenticated refusals recorded in the platform chain per source and minute (migration 034);
# the rest are counted in this metric only.
AUDIT_DENIED_PER_SOURCE_PER_MINUTE: Final = 30
AUDIT_DENIALS_SUPPRESSED_METRIC: Final = "AuditDenialsSuppressed"

# The EventBridge source of every outbox event; rules match on it.
OUTBOX_EVENT_SOURCE: Final = "alquimista.outbox"

# The reserved tenant (nil UUID, migration 029) whose chain and outbox hold what no tenant owns.
PLATFORM_TENANT: Final = UUID(int=0)
TENANT_SETTING: Final = "app.current_tenant_id"
TENANT_HEADER: Final = "x-tenant-id"
TENANT_CLAIM: Final = "custom:tenant_id"


@dataclass(frozen=True)
class ResourceNames:
    """Physical names of the resources one environment owns, the same on AWS and locally."""

    env: str

    @property
    def prefix(self) -> str:
        return f"alquimista-{self.env}"

    @property
    def db_secret(self) -> str:
        return f"/alquimista/{self.env}/aurora/credentials"

    @property
    def runtime_db_secret(self) -> str:
        return f"/alquimista/{self.env}/aurora/runtime-credentials"

    def webhook_secret(self, provider: str) -> str:
        """The provider's webhook signing secret (``{"webhook_secret": "..."}``)."""
        return f"/alquimista/{self.env}/billing/{provider}-webhook-secret"

    @property
    def leads_suppression_secret(self) -> str:
        """The leads' HMAC key for suppression digests and consent IPs (``{"hmac_key": ...}``)."""
        return f"/alquimista/{self.env}/leads/suppression-hmac-key"

    @property
    def locks_table(self) -> str:
        return f"{self.prefix}-locks"

    @property
    def idempotency_table(self) -> str:
        return f"{self.prefix}-idempotency"

    @property
    def audit_anchor_bucket(self) -> str:
        """The local (moto) anchor bucket; on AWS CloudFormation names it (names are global)."""
        return f"{self.prefix}-audit-anchors"

    @property
    def activity_table(self) -> str:
        return f"{self.prefix}-activity"

    @property
    def documents_bucket(self) -> str:
        """The local (moto) bucket of knowledge-base originals; on AWS CloudFormation names it."""
        return f"{self.prefix}-documents"

    @property
    def leads_imports_bucket(self) -> str:
        """The local (moto) bucket of leads CSV uploads; on AWS CloudFormation names it."""
        return f"{self.prefix}-lead-imports"

    @property
    def outreach_sender(self) -> str:
        """The local (moto) SES identity outreach sends from; on AWS, a verified identity."""
        return f"prospeccao@{self.prefix}.example.com"

    @property
    def event_bus(self) -> str:
        return f"{self.prefix}-events"

    @property
    def activity_queue(self) -> str:
        return f"{self.prefix}-activity"

    @property
    def user_pool(self) -> str:
        """The Cognito user pool's name (stacks/identity.py; the local stack's moto pool)."""
        return self.prefix

    @property
    def runtime_db_role(self) -> str:
        return "alquimista_app"

    @property
    def database_name(self) -> str:
        return "alquimista"


def resource_names(env: str) -> ResourceNames:
    return ResourceNames(env)
