from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from typing import Annotated, Any
    from uuid import UUID

    from aws_lambda_powertools.event_handler.openapi.params import Path
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.plans import service
    from lambdas.plans.models import PlanListResponse, PlanResponse
    from lambdas.plans.repository import PlansUnitOfWork
    from lambdas.shared.errors import error_responses
    from lambdas.shared.http import create_resolver, current_scope, resolve
    from lambdas.shared.observability import logger, metrics, tracer

app = create_resolver()


def _uow() -> PlansUnitOfWork:
    scope = current_scope(app)
    return PlansUnitOfWork(scope, scope.caller.tenant_id)


@app.get("/api/plans", summary="List the plans on sale with subnúcleos, agents and prices")
def list_plans() -> PlanListResponse:
    return service.list_plans(_uow)


@app.get(
    "/api/plans/<plan_id>",
    summary="Get one plan",
    responses=error_responses(service.PlanNotFound),
)
def get_plan(plan_id: Annotated[UUID, Path()]) -> PlanResponse:
    return service.get_plan(_uow, plan_id)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
