from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from typing import Annotated, Any

    from aws_lambda_powertools.event_handler.openapi.params import Query
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.activity import service
    from lambdas.activity.models import ActivityPage
    from lambdas.activity.repository import ActivityFeedRepository
    from lambdas.shared.http import create_resolver, current_principal, resolve
    from lambdas.shared.observability import logger, metrics, tracer
    from lambdas.shared.runtime import get_runtime

app = create_resolver()


def _feed() -> ActivityFeedRepository:
    runtime = get_runtime()
    return ActivityFeedRepository(runtime.dynamodb, table=runtime.activity_settings.activity_table)


@app.get("/api/activity", summary="The tenant's activity feed, newest first (cursor pagination)")
def list_activity(
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ActivityPage:
    return service.list_activity(
        _feed(), current_principal(app).tenant_id, cursor=cursor, limit=limit
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
