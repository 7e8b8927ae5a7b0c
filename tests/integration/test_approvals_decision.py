"""The decision route's cost and what its one database call writes (``decide_approval_v4``,
migration 058): the decision, its audit row, its ``approval.decided`` event and, when it ends the
request, the requester's notification; a refusal writes none of them."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from lambdas.shared.events import ApprovalDecidedV1
from lambdas.shared.runtime import get_runtime
from tests.integration.conftest import World
from tests.support.factories import TestTenant, TestUser, create_user
from tests.support.governance import create_approval
from tests.support.handlers import HandlerResult, call
from tests.support.round_trips import counting_round_trips

Conn = psycopg.Connection[dict[str, Any]]


def _decide(user: TestUser, approval_id: uuid.UUID, decision: str = "approved") -> HandlerResult:
    return call(
        "POST",
        f"/api/approvals/{approval_id}/decisions",
        user=user,
        body={"decision": decision, "reason": "checked with the customer"},
    )


@pytest.fixture
def acme(world: World, owner: Conn) -> TestTenant:
    world.a.users["admin2"] = create_user(owner, world.a.id, "admin")
    return world.a


def _written(owner: Conn, approval_id: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """What the tenant holds about ``approval_id`` beside the request (as the owner)."""
    audit = owner.execute(
        """
        SELECT actor_user_id, actor_type, outcome, request_id, metadata
        FROM alquimista_platform.audit_logs
        WHERE action = 'approval.decided' AND resource_id = %s ORDER BY seq
        """,
        (str(approval_id),),
    ).fetchall()
    events = owner.execute(
        """
        SELECT tenant_id, payload, payload_version FROM alquimista_platform.domain_outbox
        WHERE event_type = 'approval.decided' AND aggregate_id = %s ORDER BY seq
        """,
        (str(approval_id),),
    ).fetchall()
    notes = owner.execute(
        """
        SELECT user_id, kind, title, body, data FROM alquimista_platform.notifications
        WHERE data ->> 'approval_request_id' = %s AND kind = 'approval.decided'
        """,
        (str(approval_id),),
    ).fetchall()
    return {"audit": audit, "events": events, "notifications": notes}


@pytest.mark.parametrize(("quorum", "status"), [(2, "pending"), (1, "approved")])
def test_a_warm_decision_costs_two_round_trips(
    acme: TestTenant, owner: Conn, quorum: int, status: str
) -> None:
    # Given a warm connection (connected, types registered, past psycopg's prepare threshold)
    for _ in range(6):
        warm = create_approval(owner, acme, acme.user("member"), quorum=quorum)
        assert _decide(acme.user("admin"), warm).status == 200
    approval_id = create_approval(owner, acme, acme.user("member"), quorum=quorum)

    # When an admin decides
    with counting_round_trips(get_runtime().database.connection()) as trips:
        result = _decide(acme.user("admin"), approval_id)

    # Then: the opening (BEGIN, scoping, membership), then the decision with COMMIT
    assert result.status == 200, result.body
    assert result.body["status"] == status
    assert len(trips) == 2, trips.trips
    opening, decision = trips.trips
    assert opening[0] == "BEGIN"
    assert len(decision) == 2
    assert decision[0].startswith("prepared:")  # the call, warm
    assert decision[1] == "COMMIT"


def test_the_call_writes_the_audit_row_the_catalog_event_and_the_notification(
    acme: TestTenant, owner: Conn
) -> None:
    admin, member = acme.user("admin"), acme.user("member")
    approval_id = create_approval(owner, acme, member, quorum=1)

    result = _decide(admin, approval_id)

    assert result.status == 200, result.body
    written = _written(owner, approval_id)
    [audit], [event], [note] = written["audit"], written["events"], written["notifications"]
    # the event is the catalog's approval.decided v1, exactly as the Python writer emits it
    payload = ApprovalDecidedV1.model_validate(event["payload"]).model_dump(mode="json")
    assert event["payload"] == payload
    assert (event["tenant_id"], event["payload_version"]) == (acme.id, 1)
    assert payload == {
        "approval_id": str(approval_id),
        "decision_id": result.body["decision_id"],
        "decided_by": str(admin.id),
        "decision": "approved",
        "status": "approved",
        "approvals": 1,
        "required_approvals": 1,
    }
    # the audit row records the decider, under the request's id, with the event's payload
    assert (audit["actor_user_id"], audit["actor_type"], audit["outcome"]) == (
        admin.id,
        "user",
        "success",
    )
    assert audit["request_id"]
    assert audit["metadata"] == payload
    # the requester is told how the request ended; the text names the subject, not its content
    assert note["user_id"] == member.id
    assert note["title"] == "Approval request approved"
    assert note["body"] == f"First e-mail to a lead (lead.outreach {note['data']['subject_id']})"
    assert note["data"]["status"] == "approved"


def test_a_decision_that_leaves_the_request_pending_notifies_nobody(
    acme: TestTenant, owner: Conn
) -> None:
    approval_id = create_approval(owner, acme, acme.user("member"), quorum=2)

    assert _decide(acme.user("admin"), approval_id).status == 200

    written = _written(owner, approval_id)
    assert [len(written[kind]) for kind in ("audit", "events", "notifications")] == [1, 1, 0]


def test_a_rejection_ends_the_request_and_notifies_the_requester(
    acme: TestTenant, owner: Conn
) -> None:
    approval_id = create_approval(owner, acme, acme.user("member"), quorum=2)

    result = _decide(acme.user("admin"), approval_id, "rejected")

    assert result.status == 200, result.body
    assert result.body["status"] == "rejected"
    [note] = _written(owner, approval_id)["notifications"]
    assert note["title"] == "Approval request rejected"


@pytest.mark.parametrize(
    ("decider", "code"),
    [("admin", "self_approval"), ("member", "forbidden")],  # the database's refusal, the route's
)
def test_a_refused_decision_writes_no_audit_row_event_or_notification(
    acme: TestTenant, owner: Conn, decider: str, code: str
) -> None:
    approval_id = create_approval(owner, acme, acme.user("admin"), quorum=1)

    result = _decide(acme.user(decider), approval_id)

    assert result.status == 403, result.body
    assert result.body["error"]["code"] == code
    assert _written(owner, approval_id) == {"audit": [], "events": [], "notifications": []}
    # and the request is still open to another decider
    assert _decide(acme.user("admin2"), approval_id).status == 200
    assert len(_written(owner, approval_id)["audit"]) == 1


def test_a_second_decision_by_the_same_admin_is_refused_and_the_first_stands(
    acme: TestTenant, owner: Conn
) -> None:
    approval_id = create_approval(owner, acme, acme.user("member"), quorum=2)
    assert _decide(acme.user("admin"), approval_id).status == 200

    again = _decide(acme.user("admin"), approval_id, "rejected")

    assert again.status == 409, again.body
    written = _written(owner, approval_id)
    assert [event["payload"]["decision"] for event in written["events"]] == ["approved"]
    assert len(written["audit"]) == 1


def test_another_tenants_request_is_not_found_and_nothing_is_written(
    world: World, owner: Conn
) -> None:
    approval_id = create_approval(owner, world.a, world.a.user("member"), quorum=1)

    result = _decide(world.b.user("admin"), approval_id)

    assert result.status == 404, result.body
    assert _written(owner, approval_id) == {"audit": [], "events": [], "notifications": []}
