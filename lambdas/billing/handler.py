from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from typing import Any

    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.billing.routers import public, subscriptions, trials
    from lambdas.shared.http import create_resolver, resolve
    from lambdas.shared.observability import logger, metrics, tracer

app = create_resolver()
app.include_router(subscriptions.router)
app.include_router(trials.router)
app.include_router(public.router)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
