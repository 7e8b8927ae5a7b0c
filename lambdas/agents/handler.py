from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from typing import Annotated, Any
    from uuid import UUID

    from aws_lambda_powertools.event_handler.openapi.params import Path, Query
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.agents import service
    from lambdas.agents.models import ActivationResponse, ActiveAgentList, AgentPage, AgentResponse
    from lambdas.agents.repository import AgentsUnitOfWork
    from lambdas.shared.cursors import InvalidCursor
    from lambdas.shared.errors import error_responses
    from lambdas.shared.gate import ActionBlocked, ApprovalPending, ApprovalWithdrawn
    from lambdas.shared.http import create_resolver, current_scope, resolve
    from lambdas.shared.observability import logger, metrics, tracer

app = create_resolver()

SLUG = r"^[a-z0-9][a-z0-9-]{1,62}$"
CATEGORY = r"^[a-z0-9_]{1,63}$"


def _uow() -> AgentsUnitOfWork:
    scope = current_scope(app)
    return AgentsUnitOfWork(scope, scope.caller.tenant_id)


@app.get(
    "/api/agents",
    summary="List the agent catalog (filters, cursor pagination)",
    responses=error_responses(InvalidCursor),
)
def list_agents(
    category: Annotated[str | None, Query(pattern=CATEGORY)] = None,
    subnucleo: Annotated[str | None, Query(pattern=SLUG, description="subnúcleo slug")] = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> AgentPage:
    return service.list_catalog(
        _uow, category=category, subnucleo=subnucleo, cursor=cursor, limit=limit
    )


@app.get("/api/agents/active", summary="List the agents the tenant has activated")
def list_active_agents() -> ActiveAgentList:
    return service.list_active_agents(_uow)


@app.get(
    "/api/agents/<agent_id>",
    summary="Get one agent of the catalog",
    responses=error_responses(service.AgentNotFound),
)
def get_agent(agent_id: Annotated[UUID, Path()]) -> AgentResponse:
    return service.get_agent(_uow, agent_id)


@app.post(
    "/api/agents/<agent_id>/activate",
    summary="Activate an agent for the tenant (admin; plan or trial must cover it, and the "
    "tenant's policies allow it or an approval covers it)",
    responses=error_responses(
        service.AgentNotFound,
        service.AgentNotEntitled,
        ActionBlocked,
        ApprovalPending,
        ApprovalWithdrawn,
    ),
)
def activate_agent(agent_id: Annotated[UUID, Path()]) -> ActivationResponse:
    return service.activate_agent(_uow, agent_id, actor_id=current_scope(app).caller.user_id)


@app.post(
    "/api/agents/<agent_id>/deactivate",
    summary="Deactivate an agent for the tenant",
    responses=error_responses(service.AgentNotFound),
)
def deactivate_agent(agent_id: Annotated[UUID, Path()]) -> ActivationResponse:
    return service.deactivate_agent(_uow, agent_id)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
