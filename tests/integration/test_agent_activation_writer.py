"""``alquimista_platform.set_agent_activation_v1`` (migration 023), the one writer of the legacy
pair ``public.tenant_agents`` / ``alquimista_platform.agent_activations``, as the runtime role."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from lambdas.agents.repository import AgentsUnitOfWork
from lambdas.shared.runtime import get_runtime
from scripts.devstack.seed_catalog import find_agent
from tests.integration.conftest import World

AGENT = find_agent("sdr-prospector")
WRITER_SQL = "SELECT * FROM alquimista_platform.set_agent_activation_v1(%s, %s, %s, %s, %s)"


def _pair(owner, tenant_id: uuid.UUID) -> tuple[Any, Any]:
    owner.execute("SELECT set_config('app.current_tenant_id', %s, false)", (str(tenant_id),))
    activation = owner.execute(
        "SELECT status, activated_by, deactivated_at FROM alquimista_platform.agent_activations"
        " WHERE tenant_id = %s",
        (tenant_id,),
    ).fetchall()
    entitlement = owner.execute(
        "SELECT status, source FROM public.tenant_agents WHERE tenant_id = %s", (tenant_id,)
    ).fetchall()
    return activation, entitlement


def _as_tenant(tenant_id: uuid.UUID) -> AgentsUnitOfWork:
    scope = get_runtime().request_scope(request_id="test", read_only=False)
    return AgentsUnitOfWork(scope, tenant_id)


def test_both_rows_change_together_through_the_writer(world: World, owner) -> None:
    admin = world.a.user("admin")

    with _as_tenant(world.a.id) as uow:
        uow.activations.activate(AGENT.id, actor_id=admin.id, source="trial")
        switched = uow.activations.activate(AGENT.id, actor_id=admin.id, source="plan")
        uow.commit()
    assert switched.source == "plan"
    assert _pair(owner, world.a.id) == (
        [{"status": "active", "activated_by": admin.id, "deactivated_at": None}],
        [{"status": "active", "source": "plan"}],
    )

    with _as_tenant(world.a.id) as uow:
        off = uow.activations.deactivate(AGENT.id)
        uow.commit()

    assert (off.status, off.source) == ("deactivated", None)
    [activation], [entitlement] = _pair(owner, world.a.id)
    assert (activation["status"], entitlement["status"]) == ("deactivated", "inactive")


def test_a_tenant_cannot_activate_an_agent_for_another_tenant(world: World, owner) -> None:
    admin = world.a.user("admin")

    with (
        _as_tenant(world.a.id) as uow,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
    ):
        uow.conn.execute(WRITER_SQL, (world.b.id, AGENT.id, True, "plan", admin.id))

    assert _pair(owner, world.b.id) == ([], [])


def test_a_tenant_cannot_deactivate_another_tenants_agent(world: World, owner) -> None:
    with _as_tenant(world.b.id) as uow:
        uow.activations.activate(AGENT.id, actor_id=world.b.user("admin").id, source="plan")
        uow.commit()

    with _as_tenant(world.a.id) as uow:
        rows = uow.conn.execute(WRITER_SQL, (world.b.id, AGENT.id, False, None, None)).fetchall()
        uow.commit()

    assert rows == []
    [activation], [entitlement] = _pair(owner, world.b.id)
    assert (activation["status"], entitlement["status"]) == ("active", "active")


def test_an_activation_without_its_source_is_refused(world: World) -> None:
    with (
        _as_tenant(world.a.id) as uow,
        pytest.raises(psycopg.errors.NotNullViolation, match="entitlement source"),
    ):
        uow.conn.execute(WRITER_SQL, (world.a.id, AGENT.id, True, None, None))
