from __future__ import annotations

import uuid
from typing import Any

import psycopg

from lambdas.shared.constants import TENANT_SETTING


def _tenant_with_agent(conn: psycopg.Connection[Any]) -> tuple[uuid.UUID, uuid.UUID]:
    tenant, agent = uuid.uuid4(), uuid.uuid4()
    conn.execute(
        "INSERT INTO alquimista_platform.tenants (id, slug, name) VALUES (%s, %s, 'T')",
        (tenant, f"t-{tenant.hex[:12]}"),
    )
    conn.execute(
        """
        INSERT INTO alquimista_platform.agents (id, slug, name, category)
        VALUES (%s, %s, 'Agent', 'sales')
        """,
        (agent, f"a-{agent.hex[:12]}"),
    )
    return tenant, agent


def _trial(
    conn: psycopg.Connection[Any],
    tenant: uuid.UUID,
    *,
    expires_in: str,
    usage: int = 0,
    max_usage: int = 10,
    status: str = "active",
) -> uuid.UUID:
    _, agent = _tenant_with_agent(conn)
    trial = uuid.uuid4()
    conn.execute(
        """
        INSERT INTO public.trials
            (id, tenant_id, agent_id, status, started_at, expires_at, usage_count, max_usage)
        VALUES (%s, %s, %s, %s, now() - interval '30 days', now() + %s::interval, %s, %s)
        """,
        (trial, tenant, agent, status, expires_in, usage, max_usage),
    )
    return trial


def test_expire_trials_expires_past_due_and_used_up_trials_of_every_tenant(db) -> None:
    with db.owner() as conn:
        tenant_a, _ = _tenant_with_agent(conn)
        tenant_b, _ = _tenant_with_agent(conn)
        past_due = _trial(conn, tenant_a, expires_in="-1 hour")
        used_up = _trial(conn, tenant_a, expires_in="7 days", usage=10, max_usage=10)
        still_running = _trial(conn, tenant_a, expires_in="7 days", usage=9, max_usage=10)
        other_tenant = _trial(conn, tenant_b, expires_in="-1 day")
        converted = _trial(conn, tenant_b, expires_in="-1 day", status="converted")

    # When the scheduler calls it as the runtime role, with no tenant set
    with db.runtime() as conn:
        expired = conn.execute("SELECT public.expire_trials() AS n").fetchone()["n"]
        setting = conn.execute("SELECT current_setting(%s, true) AS v", (TENANT_SETTING,))
        left_setting = setting.fetchone()["v"]
        conn.commit()
        again = conn.execute("SELECT public.expire_trials() AS n").fetchone()["n"]
        conn.commit()

    assert expired == 3
    assert again == 0
    assert left_setting in ("", None)
    with db.owner() as conn:
        rows = conn.execute(
            "SELECT id, status, ended_at IS NOT NULL AS ended FROM public.trials"
        ).fetchall()
    status = {row["id"]: (row["status"], row["ended"]) for row in rows}
    assert status[past_due] == ("expired", True)
    assert status[used_up] == ("expired", True)
    assert status[other_tenant] == ("expired", True)
    assert status[still_running] == ("active", False)
    assert status[converted] == ("converted", False)
