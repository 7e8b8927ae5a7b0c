from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol
from uuid import UUID

from lambdas.agents.models import (
    ActivationResponse,
    ActiveAgent,
    ActiveAgentList,
    AgentPage,
    AgentResponse,
    EntitlementSource,
)
from lambdas.policies.subject import Subject
from lambdas.shared import cursors
from lambdas.shared.errors import Conflict, NotFound
from lambdas.shared.gate import Gate
from lambdas.shared.scope import ChangeRecorder


class AgentNotFound(NotFound):
    code = "agent_not_found"


class AgentNotEntitled(Conflict):
    code = "agent_not_entitled"


class CatalogReader(Protocol):
    def page(
        self, *, category: str | None, subnucleo: str | None, after_slug: str | None, limit: int
    ) -> list[AgentResponse]: ...

    def get(self, agent_id: UUID) -> AgentResponse | None: ...


class ActivationStore(Protocol):
    def entitlement(self, agent_id: UUID) -> EntitlementSource | None: ...

    def get(self, agent_id: UUID) -> ActivationResponse | None: ...

    def activate(
        self, agent_id: UUID, *, actor_id: UUID, source: EntitlementSource
    ) -> ActivationResponse: ...

    def deactivate(self, agent_id: UUID) -> ActivationResponse: ...

    def list_active(self) -> list[ActiveAgent]: ...


class AgentsUow(ChangeRecorder, Gate, Protocol):
    @property
    def catalog(self) -> CatalogReader: ...

    @property
    def activations(self) -> ActivationStore: ...

    def commit(self) -> None: ...


AgentsUowFactory = Callable[[], AbstractContextManager[AgentsUow]]


def encode_cursor(slug: str) -> str:
    return cursors.encode_cursor(slug)


def decode_cursor(cursor: str) -> str:
    return cursors.decode_cursor(cursor, valid=bool)


def list_catalog(
    uow_factory: AgentsUowFactory,
    *,
    category: str | None = None,
    subnucleo: str | None = None,
    cursor: str | None = None,
    limit: int = 20,
) -> AgentPage:
    """A page of the agent catalog, filtered by category and subnúcleo slug, by slug order."""
    after = decode_cursor(cursor) if cursor else None
    with uow_factory() as uow:
        agents = uow.catalog.page(
            category=category, subnucleo=subnucleo, after_slug=after, limit=limit + 1
        )
    has_more = len(agents) > limit
    items = agents[:limit]
    return AgentPage(items=items, next_cursor=encode_cursor(items[-1].slug) if has_more else None)


def get_agent(uow_factory: AgentsUowFactory, agent_id: UUID) -> AgentResponse:
    with uow_factory() as uow:
        agent = uow.catalog.get(agent_id)
    if agent is None:
        raise AgentNotFound("agent not found")
    return agent


def list_active_agents(uow_factory: AgentsUowFactory) -> ActiveAgentList:
    """The agents the tenant has switched on."""
    with uow_factory() as uow:
        return ActiveAgentList(items=uow.activations.list_active())


def activate_agent(
    uow_factory: AgentsUowFactory, agent_id: UUID, *, actor_id: UUID
) -> ActivationResponse:
    """Switch an agent on for the tenant, if its plan or a usable trial covers the agent and
    the tenant's policies allow it (an ``agent.action``: the gate may block it or hold it for
    approval; ``lambdas.shared.gate``).

    Idempotent: activating an active agent returns the existing activation unchanged.
    """
    with uow_factory() as uow:
        agent = uow.catalog.get(agent_id)
        if agent is None:
            raise AgentNotFound("agent not found")
        source = uow.activations.entitlement(agent_id)
        if source is None:
            raise AgentNotEntitled(
                "the tenant's plan does not include this agent's subnúcleo and no trial covers it"
            )
        current = uow.activations.get(agent_id)
        if current is not None and current.status == "active" and current.source == source:
            return current
        decision = uow.pass_gate(
            Subject(
                kind="agent.action",
                id=f"agent.activate:{agent_id}",
                agent_id=agent_id,
                agent_category=agent.category,
                action_type="agent.activate",
            ),
            summary=f"Activate the agent {agent.slug}",
            payload={"agent_id": str(agent_id)},
        )
        activation = uow.activations.activate(agent_id, actor_id=actor_id, source=source)
        uow.recheck_gate(decision)
        uow.record(
            "agent.activated",
            aggregate_type="agent",
            aggregate_id=str(agent_id),
            payload={"agent_id": agent_id, "source": source, "activated_by": actor_id},
        )
        uow.commit()
        return activation


def deactivate_agent(uow_factory: AgentsUowFactory, agent_id: UUID) -> ActivationResponse:
    """Switch an agent off for the tenant. Idempotent: an inactive agent is left as it is."""
    with uow_factory() as uow:
        if uow.catalog.get(agent_id) is None:
            raise AgentNotFound("agent not found")
        current = uow.activations.get(agent_id)
        if current is None:
            return ActivationResponse(
                agent_id=agent_id,
                status="deactivated",
                source=None,
                activated_at=None,
                activated_by=None,
                deactivated_at=None,
            )
        if current.status != "active":
            return current
        deactivated = uow.activations.deactivate(agent_id)
        uow.record(
            "agent.deactivated",
            aggregate_type="agent",
            aggregate_id=str(agent_id),
            payload={"agent_id": agent_id},
        )
        uow.commit()
        return deactivated
