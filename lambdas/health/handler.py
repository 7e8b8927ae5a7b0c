from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from http import HTTPStatus
    from typing import Any

    from aws_lambda_powertools.event_handler import Response, content_types
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.health.models import HealthResponse
    from lambdas.health.repository import HealthUnitOfWork
    from lambdas.health.service import check_health
    from lambdas.shared.http import create_resolver, current_scope, resolve
    from lambdas.shared.migration_files import discover
    from lambdas.shared.observability import logger, metrics, tracer
    from lambdas.shared.runtime import get_runtime

app = create_resolver()


@app.get(
    "/health",
    summary="Service, database and schema health",
    responses={
        200: {"description": "Database reachable and schema current"},
        503: {
            "description": "Database unreachable or migrations pending",
            "content": {"application/json": {"model": HealthResponse}},
        },
    },
)
def health() -> Response[HealthResponse]:
    scope = current_scope(app)
    report = check_health(
        lambda: HealthUnitOfWork(scope),
        environment=get_runtime().api_settings.environment,
        bundled_versions=(migration.version for migration in discover()),
    )
    status = HTTPStatus.OK if report.ok else HTTPStatus.SERVICE_UNAVAILABLE
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=report)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
