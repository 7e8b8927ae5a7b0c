"""The leads route group (Nigredo): one resolver, one router per sub-resource.

To add a sub-resource, write ``lambdas/leads/routes_<name>.py`` with a ``router`` (see
``routes_sync.py``), add its routes to ``lambdas/shared/routes.py`` and include it below with
one line. Routers whose paths are literal segments under ``/api/leads/`` (``changes``, ``sync``,
``dsr``...) must be included BEFORE ``routes_leads``, whose ``/api/leads/<lead_id>`` would
otherwise match them first.
"""

from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from typing import Any

    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.leads import (
        routes_forms,
        routes_imports,
        routes_leads,
        routes_lgpd,
        routes_outreach,
        routes_pipeline,
        routes_sync,
    )
    from lambdas.shared.http import create_resolver, resolve
    from lambdas.shared.observability import logger, metrics, tracer

app = create_resolver()
app.include_router(routes_sync.router)
app.include_router(routes_lgpd.router)
app.include_router(routes_pipeline.router)
app.include_router(routes_forms.router)
app.include_router(routes_imports.router)
app.include_router(routes_outreach.router)
app.include_router(routes_leads.router)  # last: /api/leads/<lead_id>


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
