"""Issue 12's walkthrough gaps: a pending request past its expiry reads ``expired`` before the
sweeper writes it (get, list, status filters, waiting for me), and a refused decision
(self-approval, expired, already ended, a second decision) is audited as ``denied`` after its
transaction rolled back, one row each, in a chain that still verifies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from lambdas.audit.repository import AuditRepository
from lambdas.shared.audit import verify_chain
from tests.integration.conftest import World
from tests.support.audit import scoped
from tests.support.database import TestDatabase
from tests.support.factories import TestTenant, TestUser, create_user
from tests.support.governance import create_approval
from tests.support.handlers import HandlerResult, call

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def acme(world: World, owner: Conn) -> TestTenant:
    world.a.users["admin2"] = create_user(owner, world.a.id, "admin")
    return world.a


def _decide(user: TestUser, approval_id: uuid.UUID, decision: str = "approved") -> HandlerResult:
    return call(
        "POST",
        f"/api/approvals/{approval_id}/decisions",
        user=user,
        body={"decision": decision, "reason": "checked with the customer"},
    )


def _expire_unswept(owner_conn: Conn, approval_id: uuid.UUID) -> None:
    """Past its expiry, still ``pending`` in its row: the sweeper has not run."""
    with owner_conn.transaction():
        owner_conn.execute("SET LOCAL session_replication_role = replica")
        owner_conn.execute(
            "UPDATE alquimista_platform.approval_requests SET expires_at = %s WHERE id = %s",
            (datetime.now(UTC) - timedelta(seconds=1), approval_id),
        )


def _stored_status(owner_conn: Conn, approval_id: uuid.UUID) -> str:
    row = owner_conn.execute(
        "SELECT status FROM alquimista_platform.approval_requests WHERE id = %s", (approval_id,)
    ).fetchone()
    assert row is not None
    return str(row["status"])


def _listed(user: TestUser, query: str = "") -> dict[str, str]:
    page = call("GET", "/api/approvals", user=user, query=query)
    assert page.status == 200, page.body
    return {item["id"]: item["status"] for item in page.body["items"]}


def _denials(owner_conn: Conn) -> list[dict[str, Any]]:
    """Every tenant's denied rows (row security off)."""
    return owner_conn.execute(
        """
        SELECT tenant_id, actor_user_id, actor_type, action, resource_type, resource_id, metadata
        FROM alquimista_platform.audit_logs WHERE outcome = 'denied' ORDER BY created_at, seq
        """
    ).fetchall()


def _chain_verifies(db: TestDatabase, tenant: TestTenant) -> bool:
    with scoped(db, tenant.id) as conn:
        result = verify_chain(AuditRepository(conn, tenant.id).stream())
    return result.ok


def test_an_expired_request_reads_expired_before_the_sweeper_runs(
    world: World, acme: TestTenant, owner_conn: Conn
) -> None:
    admin, member = acme.user("admin"), acme.user("member")
    late = create_approval(owner_conn, acme, member)
    fresh = create_approval(owner_conn, acme, member)
    _expire_unswept(owner_conn, late)

    # The one read, the list and its filters all say expired; its row still says pending
    detail = call("GET", f"/api/approvals/{late}", user=member)
    assert (detail.status, detail.body["status"]) == (200, "expired")
    assert _stored_status(owner_conn, late) == "pending"
    assert _listed(admin) == {str(late): "expired", str(fresh): "pending"}
    assert _listed(admin, "status=pending") == {str(fresh): "pending"}
    assert _listed(admin, "status=expired") == {str(late): "expired"}
    assert _listed(admin, "status=expired&mine=true") == {}
    assert _listed(member, "status=expired&mine=true") == {str(late): "expired"}
    assert _listed(member, "status=pending&mine=true") == {str(fresh): "pending"}
    assert _listed(admin, "waiting_for_me=true") == {str(fresh): "pending"}
    assert _listed(admin, "status=approved") == {}
    # and deciding it is refused as expired, as before
    assert _decide(admin, late).body["error"]["code"] == "approval_expired"
    # another tenant sees neither, under any filter
    assert _listed(world.b.user("admin"), "status=expired") == {}
    assert call("GET", f"/api/approvals/{late}", user=world.b.user("admin")).status == 404


def test_a_swept_request_still_lists_once_as_expired(acme: TestTenant, owner_conn: Conn) -> None:
    late = create_approval(owner_conn, acme, acme.user("member"))
    _expire_unswept(owner_conn, late)
    with owner_conn.transaction():
        owner_conn.execute("SET LOCAL session_replication_role = replica")
        owner_conn.execute(
            "UPDATE alquimista_platform.approval_requests SET status = 'expired' WHERE id = %s",
            (late,),
        )

    assert _listed(acme.user("admin"), "status=expired") == {str(late): "expired"}
    assert _listed(acme.user("admin"), "status=pending") == {}


def _self_approval(acme: TestTenant, owner_conn: Conn) -> tuple[uuid.UUID, TestUser]:
    return create_approval(owner_conn, acme, acme.user("admin")), acme.user("admin")


def _expired(acme: TestTenant, owner_conn: Conn) -> tuple[uuid.UUID, TestUser]:
    approval_id = create_approval(owner_conn, acme, acme.user("member"))
    _expire_unswept(owner_conn, approval_id)
    return approval_id, acme.user("admin")


def _ended(acme: TestTenant, owner_conn: Conn) -> tuple[uuid.UUID, TestUser]:
    approval_id = create_approval(owner_conn, acme, acme.user("member"), quorum=1)
    assert _decide(acme.user("admin"), approval_id).body["status"] == "approved"
    return approval_id, acme.user("admin2")


def _second_decision(acme: TestTenant, owner_conn: Conn) -> tuple[uuid.UUID, TestUser]:
    approval_id = create_approval(owner_conn, acme, acme.user("member"), quorum=2)
    assert _decide(acme.user("admin"), approval_id).status == 200
    return approval_id, acme.user("admin")


@pytest.mark.parametrize(
    ("arrange", "status", "code"),
    [
        (_self_approval, 403, "self_approval"),
        (_expired, 409, "approval_expired"),
        (_ended, 409, "approval_not_pending"),
        (_second_decision, 409, "already_decided"),
    ],
)
def test_a_refused_decision_is_audited_once_as_denied_and_the_chain_verifies(
    db: TestDatabase,
    acme: TestTenant,
    owner_conn: Conn,
    arrange: Any,
    status: int,
    code: str,
) -> None:
    approval_id, decider = arrange(acme, owner_conn)

    refused = _decide(decider, approval_id, "rejected")

    assert (refused.status, refused.body["error"]["code"]) == (status, code)
    (denial,) = _denials(owner_conn)
    assert denial == {
        "tenant_id": acme.id,
        "actor_user_id": decider.id,
        "actor_type": "user",
        "action": "approval.decision_refused",
        "resource_type": "approval",
        "resource_id": str(approval_id),
        "metadata": {"approval_id": str(approval_id), "code": code},
    }
    # nothing of the refused decision itself was kept
    decisions = owner_conn.execute(
        "SELECT count(*) AS n FROM alquimista_platform.approval_decisions"
        " WHERE approval_request_id = %s AND decision = 'rejected'",
        (approval_id,),
    ).fetchone()
    assert decisions == {"n": 0}
    assert _chain_verifies(db, acme)
    # and the refusal is in the tenant's audit log as its admins read it
    page = call("GET", "/api/audit", user=acme.user("admin"), query="limit=50")
    assert "approval.decision_refused" in [entry["action"] for entry in page.body["items"]]


def test_another_tenants_request_is_not_found_and_audited_in_no_chain(
    db: TestDatabase, world: World, owner_conn: Conn
) -> None:
    approval_id = create_approval(owner_conn, world.a, world.a.user("member"))

    result = _decide(world.b.user("admin"), approval_id)

    assert (result.status, result.body["error"]["code"]) == (404, "approval_not_found")
    assert _denials(owner_conn) == []
    assert _chain_verifies(db, world.a)
    assert _chain_verifies(db, world.b)


def test_an_invalid_reason_is_not_audited_as_a_refusal(acme: TestTenant, owner_conn: Conn) -> None:
    approval_id = create_approval(owner_conn, acme, acme.user("member"))

    result = call(
        "POST",
        f"/api/approvals/{approval_id}/decisions",
        user=acme.user("admin"),
        body={"decision": "approved", "reason": "   "},
    )

    assert result.status == 422, result.body
    assert _denials(owner_conn) == []
