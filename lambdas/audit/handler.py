from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from datetime import UTC, datetime
    from typing import Annotated, Any
    from uuid import UUID

    import boto3
    from aws_lambda_powertools.event_handler.openapi.params import Query
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.audit import service
    from lambdas.audit.anchors import S3AnchorStore, anchor_of
    from lambdas.audit.models import AuditFilters, AuditPage, VerifyResponse
    from lambdas.audit.repository import AuditUnitOfWork
    from lambdas.shared.audit import Anchor
    from lambdas.shared.constants import AUDIT_ANCHOR_AGE_METRIC, AUDIT_VERIFY_FAILURES_METRIC
    from lambdas.shared.http import create_resolver, current_scope, resolve
    from lambdas.shared.observability import logger, metrics, tracer
    from lambdas.shared.runtime import get_runtime

app = create_resolver()

NAME = r"^[a-z][a-z0-9_.:-]{0,99}$"


def _uow() -> AuditUnitOfWork:
    scope = current_scope(app)
    return AuditUnitOfWork(scope, scope.caller.tenant_id)


def _external_anchor(tenant_id: UUID) -> Anchor | None:
    """The tenant's head in the latest S3 anchor; records the anchor's age."""
    settings = get_runtime().audit_settings
    if not settings.audit_anchor_bucket:
        return None
    store = S3AnchorStore(
        boto3.client("s3"),
        bucket=settings.audit_anchor_bucket,
        retention_days=settings.audit_anchor_retention_days,
    )
    document = store.latest()
    if document is None:
        return None
    age = (datetime.now(UTC) - document.at).total_seconds()
    metrics.add_metric(name=AUDIT_ANCHOR_AGE_METRIC, unit=MetricUnit.Seconds, value=age)
    return anchor_of(document, tenant_id)


@app.get("/api/audit", summary="List the tenant's audit log, newest first (admin)")
def list_audit(
    *,
    actor: Annotated[UUID | None, Query(description="actor (user) id")] = None,
    action: Annotated[str | None, Query(pattern=NAME)] = None,
    resource_type: Annotated[str | None, Query(pattern=NAME)] = None,
    resource_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    since: Annotated[datetime | None, Query(description="occurred at or after")] = None,
    until: Annotated[datetime | None, Query(description="occurred before")] = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPage:
    filters = AuditFilters(
        actor_id=actor,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        since=since,
        until=until,
    )
    return service.list_entries(_uow, filters, cursor=cursor, limit=limit)


@app.get(
    "/api/audit/verify",
    summary="Verify the tenant's hash chain against its rows and the latest external anchor",
)
def verify_audit(
    from_seq: Annotated[int | None, Query(ge=1)] = None,
    to_seq: Annotated[int | None, Query(ge=1)] = None,
) -> VerifyResponse:
    external = _external_anchor(current_scope(app).caller.tenant_id)
    result = service.verify_tenant_chain(_uow, external, from_seq=from_seq, to_seq=to_seq)
    metrics.add_metric(
        name=AUDIT_VERIFY_FAILURES_METRIC, unit=MetricUnit.Count, value=0 if result.ok else 1
    )
    if not result.ok:
        logger.warning(
            "audit chain verification failed",
            extra={"first_bad_seq": result.first_bad_seq, "reason": result.reason},
        )
    return result


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
