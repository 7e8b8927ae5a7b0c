"""Defaults every function shares, and the few numbers the stacks agree on."""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_

from lambdas.shared.constants import METRICS_NAMESPACE, POWERTOOLS_SERVICE

LAMBDA_RUNTIME: Final = lambda_.Runtime.PYTHON_3_13
LAMBDA_ARCHITECTURE: Final = lambda_.Architecture.ARM_64
LAMBDA_LOGGING_FORMAT: Final = lambda_.LoggingFormat.JSON
LAMBDA_TRACING: Final = lambda_.Tracing.ACTIVE
LAMBDA_MEMORY_MB: Final = 512
API_LAMBDA_TIMEOUT: Final = Duration.seconds(29)  # an HTTP API integration gives up at 30 s
MIGRATION_LAMBDA_TIMEOUT: Final = Duration.minutes(15)
MIGRATION_SERVICE_TIMEOUT: Final = Duration.minutes(20)
# Not a mutex (the runner's advisory lock is, docs/migrations.md): a bound on the connections
# the owner's function can open, and room for an operator's status beside a deploy's apply.
MIGRATION_RESERVED_CONCURRENCY: Final = 2

POWERTOOLS_ENVIRONMENT: Final[dict[str, str]] = {
    "POWERTOOLS_SERVICE_NAME": POWERTOOLS_SERVICE,
    "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    "POWERTOOLS_LOG_LEVEL": "INFO",
}

MASTER_USERNAME: Final = "alquimista_owner"
POSTGRES_PORT: Final = 5432

# The group whose bundle carries the LLM client and whose function may reach the internet.
CHAT_GROUP: Final = "chat"
# The group that invites users into the Cognito user pool.
MEMBERS_GROUP: Final = "members"
LEADS_GROUP: Final = "leads"
# Groups whose functions run in subnets with a route to the internet: the LLM provider,
# Cognito's admin API and SES's (no interface endpoint needed for a few calls a day).
EGRESS_GROUPS: Final = frozenset({CHAT_GROUP, MEMBERS_GROUP, LEADS_GROUP})
# Groups that serve only reads of platform state: no DynamoDB idempotency table.
READ_ONLY_GROUPS: Final = frozenset({"health", "audit", "activity"})
# Functions that read the audit anchor bucket (the jobs function also writes it).
AUDIT_ANCHOR_READERS: Final = frozenset({"audit", "jobs"})
# The group that reads the activity feed the outbox projects into DynamoDB.
ACTIVITY_GROUP: Final = "activity"
# Groups that verify the payment provider's webhook signatures.
WEBHOOK_GROUPS: Final = frozenset({"billing"})
# Groups that hash leads' identifiers with the suppression HMAC key.
SUPPRESSION_KEY_GROUPS: Final = frozenset({"leads"})
# The scheduled jobs' function: the API's database access plus the locks table for its leases.
JOBS_GROUP: Final = "jobs"

# Aurora PostgreSQL sizes max_connections from memory (2 GiB per ACU):
# LEAST(DBInstanceClassMemory / 9531392, 5000). Lambdas may use at most this share of it,
# leaving the rest to the migration runner, rotation and operators.
AURORA_BYTES_PER_ACU: Final = 2 * 1024**3
AURORA_BYTES_PER_CONNECTION: Final = 9_531_392
AURORA_MAX_CONNECTIONS_CAP: Final = 5000
LAMBDA_CONNECTION_SHARE: Final = 0.8


def aurora_max_connections(max_acu: float) -> int:
    """max_connections Aurora PostgreSQL gives a Serverless v2 writer at ``max_acu``."""
    return min(
        int(max_acu * AURORA_BYTES_PER_ACU // AURORA_BYTES_PER_CONNECTION),
        AURORA_MAX_CONNECTIONS_CAP,
    )


# Scheduled jobs (lambdas/jobs) and how often EventBridge runs each.
JOB_SCHEDULES: Final = {
    "expire_trials": Duration.hours(1),
    "anchor_audit_heads": Duration.minutes(15),
    "sweep_approvals": Duration.minutes(5),
    "leads_dsr_deadlines": Duration.hours(1),
    # Idempotent: each run rewrites yesterday's and today's rows of metricas_diarias.
    "rollup_leads_metrics": Duration.hours(1),
    "purge_deleted_leads": Duration.days(1),
    # The counts only steer the leads list's text search (migration 064): a day stale costs
    # time on terms that grew common since, never a match.
    "count_lead_search_keys": Duration.days(1),
    # Token reservations live 5 minutes (lambdas/chat/constants.py): an expired one is freed
    # within 5 more.
    "release_chat_reservations": Duration.minutes(5),
    # Vectors the ingestion Lambda stored unindexed are searched exactly until this inserts
    # them into the HNSW graph (lambdas/chat/jobs.py).
    "index_chat_embeddings": Duration.minutes(1),
}
# The alarm on the approval backlog: the oldest pending request waited longer than this.
APPROVAL_PENDING_AGE_ALARM: Final = Duration.hours(12)  # half the default expiry
