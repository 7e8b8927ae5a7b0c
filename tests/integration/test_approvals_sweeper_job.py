"""The ``sweep_approvals`` job through the jobs Lambda: expires due requests in every tenant,
records each in its tenant's audit chain and outbox; the backlog it reports counts across
tenants (``approval_backlog_v1``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psycopg
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.approvals.repository import backlog
from lambdas.jobs.handler import lambda_handler
from scripts.devstack.aws_resources import LocalResources
from scripts.devstack.gateway import LambdaContextStub
from tests.integration.conftest import World
from tests.support.governance import create_approval

Conn = psycopg.Connection[dict[str, Any]]


def _backdate(owner_conn: Conn, approval_id: Any, *, hours: int) -> None:
    with owner_conn.transaction():
        owner_conn.execute("SET LOCAL session_replication_role = replica")
        owner_conn.execute(
            """
            UPDATE alquimista_platform.approval_requests
            SET expires_at = now() - interval '1 second', created_at = %s WHERE id = %s
            """,
            (datetime.now(UTC) - timedelta(hours=hours), approval_id),
        )


def test_the_sweeper_expires_in_every_tenant_records_each_and_reports_the_backlog(
    world: World,
    owner: Conn,
    owner_conn: Conn,
    lambda_env: LocalResources,
) -> None:
    # Given a due request in each tenant and one still pending in tenant a
    due_a = create_approval(owner, world.a, world.a.user("member"))
    due_b = create_approval(owner, world.b, world.b.user("member"))
    waiting = create_approval(owner, world.a, world.a.user("member"))
    _backdate(owner_conn, due_a, hours=30)
    _backdate(owner_conn, due_b, hours=2)

    # When the job runs
    context = LambdaContextStub(function_name="alquimista-dev-jobs")
    report = lambda_handler({"job": "sweep_approvals"}, cast("LambdaContext", context))

    # Then both due requests expired, each recorded in its own tenant's chain and outbox
    assert report == {**report, "ok": True, "skipped": False, "affected": 2}
    rows = owner_conn.execute(
        """
        SELECT a.tenant_id, a.resource_id, a.actor_type, o.event_type
        FROM alquimista_platform.audit_logs AS a
        JOIN alquimista_platform.domain_outbox AS o
          ON o.aggregate_id = a.resource_id AND o.tenant_id = a.tenant_id
        WHERE a.action = 'approval.expired'
        """
    ).fetchall()
    assert {(r["tenant_id"], r["resource_id"]) for r in rows} == {
        (world.a.id, str(due_a)),
        (world.b.id, str(due_b)),
    }
    assert {(r["actor_type"], r["event_type"]) for r in rows} == {("system", "approval.expired")}
    # and the backlog the job reports as metrics counts the one still waiting
    pending, oldest = backlog(owner)
    created = owner_conn.execute(
        "SELECT created_at FROM alquimista_platform.approval_requests WHERE id = %s", (waiting,)
    ).fetchone()
    assert created is not None
    assert (pending, oldest) == (1, created["created_at"])
