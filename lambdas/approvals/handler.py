"""The approvals function: ``/api/policies`` and ``/api/approvals``. One function for both:
they share the gate's code and dependency (google-re2), a dry run and an approval read the
same tables, and neither is hot enough to need its own concurrency."""

from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from typing import Any

    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.approvals.routers import policies, requests
    from lambdas.shared.http import create_resolver, resolve
    from lambdas.shared.observability import logger, metrics, tracer

app = create_resolver()
app.include_router(policies.router)
app.include_router(requests.router)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
