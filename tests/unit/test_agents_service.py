from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from lambdas.agents import service
from lambdas.agents.models import (
    ActivationResponse,
    ActiveAgent,
    AgentResponse,
    EntitlementSource,
)
from lambdas.policies.matcher import Subject
from lambdas.shared.cursors import InvalidCursor
from lambdas.shared.events import validated_payload
from lambdas.shared.gate import ActionBlocked, GateDecision


def _agent(slug: str) -> AgentResponse:
    return AgentResponse(
        id=uuid.uuid4(),
        slug=slug,
        name=slug,
        description="",
        category="sales",
        status="active",
        version="1.0.0",
        requires_approval=False,
        subnucleos=["vendas"],
    )


@dataclass
class FakeCatalog:
    agents: list[AgentResponse]

    def page(self, *, category, subnucleo, after_slug, limit) -> list[AgentResponse]:
        ordered = sorted(self.agents, key=lambda a: a.slug)
        return [a for a in ordered if after_slug is None or a.slug > after_slug][:limit]

    def get(self, agent_id: uuid.UUID) -> AgentResponse | None:
        return next((a for a in self.agents if a.id == agent_id), None)


@dataclass
class FakeActivations:
    entitled: dict[uuid.UUID, EntitlementSource] = field(default_factory=dict)
    rows: dict[uuid.UUID, ActivationResponse] = field(default_factory=dict)
    writes: int = 0

    def entitlement(self, agent_id: uuid.UUID) -> EntitlementSource | None:
        return self.entitled.get(agent_id)

    def get(self, agent_id: uuid.UUID) -> ActivationResponse | None:
        return self.rows.get(agent_id)

    def activate(self, agent_id, *, actor_id, source) -> ActivationResponse:
        self.writes += 1
        self.rows[agent_id] = ActivationResponse(
            agent_id=agent_id,
            status="active",
            source=source,
            activated_at=datetime.now(UTC),
            activated_by=actor_id,
            deactivated_at=None,
        )
        return self.rows[agent_id]

    def deactivate(self, agent_id) -> ActivationResponse:
        self.writes += 1
        row = self.rows[agent_id].model_copy(
            update={"status": "deactivated", "source": None, "deactivated_at": datetime.now(UTC)}
        )
        self.rows[agent_id] = row
        return row

    def list_active(self) -> list[ActiveAgent]:
        return []


@dataclass
class FakeAgentsUow:
    catalog: FakeCatalog
    activations: FakeActivations
    committed: bool = False
    recorded: list[tuple[str, str]] = field(default_factory=list)
    gated: list[Subject] = field(default_factory=list)
    rechecked: list[GateDecision] = field(default_factory=list)
    block: bool = False

    def commit(self) -> None:
        self.committed = True

    def pass_gate(self, subject: Subject, *, summary: str, payload=None) -> GateDecision:
        self.gated.append(subject)
        if self.block:
            raise ActionBlocked("blocked by the tenant's policies")
        return GateDecision(verdict="allow", evaluation_id=uuid.uuid4(), reason="no rule")

    def recheck_gate(self, decision: GateDecision) -> None:
        self.rechecked.append(decision)

    def record(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> None:
        validated_payload(event_type, version, aggregate_type, payload)
        self.recorded.append((event_type, aggregate_id))


@pytest.fixture
def uow() -> FakeAgentsUow:
    return FakeAgentsUow(FakeCatalog([_agent(s) for s in "edcba"]), FakeActivations())


def _factory(uow: FakeAgentsUow):
    @contextmanager
    def factory() -> Iterator[FakeAgentsUow]:
        uow.committed = False
        yield uow

    return factory


def test_pages_follow_the_cursor_to_the_end(uow: FakeAgentsUow) -> None:
    first = service.list_catalog(_factory(uow), limit=2)
    second = service.list_catalog(_factory(uow), cursor=first.next_cursor, limit=2)
    last = service.list_catalog(_factory(uow), cursor=second.next_cursor, limit=2)

    assert [a.slug for a in first.items + second.items + last.items] == list("abcde")
    assert last.next_cursor is None


def test_a_full_last_page_has_no_next_cursor(uow: FakeAgentsUow) -> None:
    assert service.list_catalog(_factory(uow), limit=5).next_cursor is None


@pytest.mark.parametrize("cursor", ["%%%", "\x00", "!!", "é", "Zm9v\u00e9"])
def test_a_forged_cursor_is_refused(uow: FakeAgentsUow, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        service.list_catalog(_factory(uow), cursor=cursor)


def test_activation_needs_an_entitlement_and_writes_nothing_without(uow) -> None:
    agent = uow.catalog.agents[0]

    with pytest.raises(service.AgentNotEntitled):
        service.activate_agent(_factory(uow), agent.id, actor_id=uuid.uuid4())
    assert uow.activations.writes == 0
    assert not uow.committed


def test_activating_twice_writes_once_and_commits_once(uow) -> None:
    agent = uow.catalog.agents[0]
    uow.activations.entitled[agent.id] = "plan"
    actor = uuid.uuid4()

    first = service.activate_agent(_factory(uow), agent.id, actor_id=actor)
    assert uow.committed
    second = service.activate_agent(_factory(uow), agent.id, actor_id=actor)

    assert first == second
    assert uow.activations.writes == 1
    assert not uow.committed


def test_an_unknown_agent_is_not_found(uow) -> None:
    with pytest.raises(service.AgentNotFound):
        service.activate_agent(_factory(uow), uuid.uuid4(), actor_id=uuid.uuid4())
    with pytest.raises(service.AgentNotFound):
        service.deactivate_agent(_factory(uow), uuid.uuid4())


def test_deactivating_an_inactive_agent_writes_nothing(uow) -> None:
    agent = uow.catalog.agents[0]
    uow.activations.entitled[agent.id] = "trial"
    service.activate_agent(_factory(uow), agent.id, actor_id=uuid.uuid4())

    service.deactivate_agent(_factory(uow), agent.id)
    again = service.deactivate_agent(_factory(uow), agent.id)

    assert again.status == "deactivated"
    assert uow.activations.writes == 2


def test_activation_passes_the_gate_as_an_agent_action_and_rechecks_after(uow) -> None:
    agent = uow.catalog.agents[0]
    uow.activations.entitled[agent.id] = "plan"

    service.activate_agent(_factory(uow), agent.id, actor_id=uuid.uuid4())

    (subject,) = uow.gated
    assert (subject.kind, subject.agent_id, subject.action_type) == (
        "agent.action",
        agent.id,
        "agent.activate",
    )
    assert len(uow.rechecked) == 1


def test_a_blocked_activation_writes_nothing(uow) -> None:
    agent = uow.catalog.agents[0]
    uow.activations.entitled[agent.id] = "plan"
    uow.block = True

    with pytest.raises(ActionBlocked):
        service.activate_agent(_factory(uow), agent.id, actor_id=uuid.uuid4())

    assert uow.activations.writes == 0
    assert uow.recorded == []
