"""What the leads routers share: units of work for the caller's tenant, the suppression HMAC key
from Secrets Manager, and the services built over them for the request."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from lambdas.leads.lgpd_service import LgpdService
from lambdas.leads.pipeline_service import PipelineService
from lambdas.leads.service import LeadService
from lambdas.leads.sync_service import SyncService
from lambdas.leads.uow import LeadsUnitOfWork
from lambdas.shared.errors import ServiceUnavailable
from lambdas.shared.http import current_scope
from lambdas.shared.runtime import get_runtime
from lambdas.shared.secrets import get_json_secret

MIN_KEY_BYTES = 32


class SuppressionKeyMissing(ServiceUnavailable):
    code = "service_unavailable"


def suppression_key() -> bytes:
    """The HMAC key of the suppression list and consent IPs (cached with the secret)."""
    settings = get_runtime().leads_settings
    if settings.suppression_secret_id is None:
        raise SuppressionKeyMissing("the leads service is not configured; retry later")
    secret = get_json_secret(
        settings.suppression_secret_id, max_age=settings.suppression_secret_max_age_s
    )
    key = str(secret.get("hmac_key", "")).encode()
    if len(key) < MIN_KEY_BYTES:
        raise SuppressionKeyMissing("the leads service is not configured; retry later")
    return key


class LeadsDependencies:
    """Built once per router: each property makes what one request needs, from its scope."""

    def __init__(self, router: Router) -> None:
        self._router = router

    def uow(self) -> LeadsUnitOfWork:
        scope = current_scope(self._router)
        return LeadsUnitOfWork(scope, scope.caller.tenant_id)

    def leads(self) -> LeadService:
        return LeadService(self.uow, suppression_key=suppression_key())

    def lgpd(self) -> LgpdService:
        return LgpdService(self.uow, suppression_key=suppression_key())

    def sync(self) -> SyncService:
        return SyncService(self.uow, suppression_key=suppression_key())

    def pipeline(self) -> PipelineService:
        return PipelineService(self.uow)
