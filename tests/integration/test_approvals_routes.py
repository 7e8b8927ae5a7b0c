"""The approvals function through its handler, as users would drive it (issue 12, "How it is
checked"): an admin's rule, a member's subject held for two approvals, the separation of
duties, the quorum, expiry, and every step in GET /api/audit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from scripts.devstack.aws_resources import LocalResources
from tests.integration.conftest import World
from tests.support.factories import TestTenant, create_user
from tests.support.handlers import HandlerResult, call

Conn = psycopg.Connection[dict[str, Any]]
CPF_TEXT = "meu cpf é 529.982.247-25, pode cadastrar?"
CPF_RULE = {
    "name": "messages mentioning a CPF need 2 approvals",
    "effect": "require_approval",
    "required_approvals": 2,
    "matcher": {"subject_kinds": ["chat.message"], "detectors": ["cpf"]},
}


def _ask(user: Any, subject_id: str, text: str = CPF_TEXT) -> HandlerResult:
    return call(
        "POST",
        "/api/approvals",
        user=user,
        body={
            "subject_kind": "chat.message",
            "subject_id": subject_id,
            "action_type": "chat.send",
            "summary": "A chat message to the assistant",
            "text": text,
        },
    )


def _decide(user: Any, approval_id: str, decision: str = "approved") -> HandlerResult:
    return call(
        "POST",
        f"/api/approvals/{approval_id}/decisions",
        user=user,
        body={"decision": decision, "reason": "checked with the customer"},
    )


def _backdate(owner_conn: Conn, approval_id: str) -> None:
    with owner_conn.transaction():
        owner_conn.execute("SET LOCAL session_replication_role = replica")
        owner_conn.execute(
            "UPDATE alquimista_platform.approval_requests SET expires_at = %s WHERE id = %s",
            (datetime.now(UTC) - timedelta(seconds=1), approval_id),
        )


def _audit_actions(admin: Any) -> list[str]:
    page = call("GET", "/api/audit", user=admin, query="limit=200")
    assert page.status == 200, page.body
    return [entry["action"] for entry in reversed(page.body["items"])]


@pytest.fixture
def acme(world: World, owner: Conn) -> TestTenant:
    world.a.users["admin2"] = create_user(owner, world.a.id, "admin")
    return world.a


def test_the_checked_story_through_the_handlers(
    acme: TestTenant, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    admin, admin2, member = acme.user("admin"), acme.user("admin2"), acme.user("member")
    # Given acme's admin creates "messages mentioning a CPF need 2 approvals"
    created = call("POST", "/api/policies", user=admin, body=CPF_RULE)
    assert created.status == 201, created.body
    assert created.body["version"] == 1

    # When a member's matching subject is asked for
    asked = _ask(member, "msg-1")

    # Then it is pending, on the rule that decided, and the text was not stored
    assert asked.status == 200, asked.body
    assert asked.body["verdict"] == "pending"
    assert asked.body["rule_id"] == created.body["rule_id"]
    approval_id = asked.body["approval"]["id"]
    stored = owner_conn.execute(
        "SELECT payload::text AS p, summary FROM alquimista_platform.approval_requests"
        " WHERE id = %s",
        (approval_id,),
    ).fetchone()
    assert stored is not None
    assert "529" not in stored["p"] + stored["summary"]

    # and asking again finds the same request
    again = _ask(member, "msg-1")
    assert again.body["approval"]["id"] == approval_id

    # The member cannot approve it
    refused = _decide(member, approval_id)
    assert refused.status == 403

    # One admin approves: still pending; the same admin cannot approve twice
    first = _decide(admin, approval_id)
    assert (first.status, first.body["status"], first.body["approvals"]) == (200, "pending", 1)
    twice = _decide(admin, approval_id)
    assert (twice.status, twice.body["error"]["code"]) == (409, "already_decided")

    # A second admin approves: approved
    second = _decide(admin2, approval_id)
    assert (second.status, second.body["status"]) == (200, "approved")

    # and the subject is now allowed, on that approval
    allowed = _ask(member, "msg-1")
    assert (allowed.body["verdict"], allowed.body["approval"]["id"]) == ("allow", approval_id)

    # The request reads with its decisions and the evaluation that caused it
    detail = call("GET", f"/api/approvals/{approval_id}", user=member)
    assert detail.status == 200
    assert [d["decided_by"] for d in detail.body["decisions"]] == [str(admin.id), str(admin2.id)]
    assert detail.body["evaluation"]["verdict"] == "require_approval"
    assert detail.body["evaluation"]["rule_version"] == 1

    # An expired request reads expired and cannot be approved
    other = _ask(member, "msg-2").body["approval"]["id"]
    _backdate(owner_conn, other)
    assert call("GET", f"/api/approvals/{other}", user=member).body["status"] == "expired"
    late = _decide(admin, other)
    assert (late.status, late.body["error"]["code"]) == (409, "approval_expired")

    # Every step is in the tenant's audit log, the refused attempts too
    actions = _audit_actions(admin)
    assert actions == [
        "policy_rule.created",
        "approval.created",
        "access.denied",
        "approval.decided",
        "approval.decision_refused",
        "approval.decided",
        "approval.created",
        "approval.decision_refused",
    ]


def test_waiting_for_me_and_mine_filter_the_list(
    acme: TestTenant, lambda_env: LocalResources
) -> None:
    admin, member = acme.user("admin"), acme.user("member")
    call("POST", "/api/policies", user=admin, body=CPF_RULE)
    ids = [_ask(member, f"msg-{n}").body["approval"]["id"] for n in range(3)]
    _decide(admin, ids[0])

    waiting = call("GET", "/api/approvals", user=admin, query="waiting_for_me=true")
    mine = call("GET", "/api/approvals", user=member, query="mine=true&limit=2")
    rest = call(
        "GET",
        "/api/approvals",
        user=member,
        query=f"mine=true&limit=2&cursor={mine.body['next_cursor']}",
    )

    assert {item["id"] for item in waiting.body["items"]} == set(ids[1:])
    assert [i["id"] for i in mine.body["items"] + rest.body["items"]] == ids[::-1]
    assert rest.body["next_cursor"] is None
    forged = call("GET", "/api/approvals", user=member, query="cursor=bm9wZQ")
    assert (forged.status, forged.body["error"]["code"]) == (422, "invalid_cursor")


def test_an_invalid_matcher_is_422_with_the_reason_and_not_stored(
    acme: TestTenant, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    bad = CPF_RULE | {"matcher": {"patterns": ["(a+"]}}

    refused = call("POST", "/api/policies", user=acme.user("admin"), body=bad)

    assert refused.status == 422
    assert refused.body["error"]["code"] == "invalid_matcher"
    assert "RE2" in refused.body["error"]["message"] + str(refused.body["error"].get("details"))
    row = owner_conn.execute(
        "SELECT count(*) AS n FROM alquimista_platform.policy_rules"
    ).fetchone()
    assert row is not None
    assert row["n"] == 0


def test_a_rule_edit_is_a_new_version_and_deactivation_stops_it(
    acme: TestTenant, lambda_env: LocalResources
) -> None:
    admin, member = acme.user("admin"), acme.user("member")
    rule = call("POST", "/api/policies", user=admin, body=CPF_RULE).body
    path = f"/api/policies/{rule['rule_id']}"

    edited = call(
        "PUT", path, user=admin, body=CPF_RULE | {"required_approvals": 1, "expected_version": 1}
    )
    stale = call("PUT", path, user=admin, body=CPF_RULE | {"expected_version": 1})
    off = call("POST", f"{path}/deactivate", user=admin)
    history = call("GET", path, user=member)
    dry = call(
        "POST",
        "/api/policies/evaluate",
        user=member,
        body={"kind": "chat.message", "text": CPF_TEXT},
    )

    assert (edited.status, edited.body["version"]) == (200, 2)
    assert (stale.status, stale.body["error"]["code"]) == (409, "policy_rule_changed")
    assert (off.status, off.body["version"], off.body["active"]) == (200, 3, False)
    assert [v["version"] for v in history.body["versions"]] == [3, 2, 1]
    assert (dry.status, dry.body["effect"], dry.body["rule_id"]) == (200, "allow", None)


def test_the_dry_run_names_the_deciding_rule_and_why(
    acme: TestTenant, lambda_env: LocalResources
) -> None:
    call("POST", "/api/policies", user=acme.user("admin"), body=CPF_RULE)

    dry = call(
        "POST",
        "/api/policies/evaluate",
        user=acme.user("member"),
        body={"kind": "chat.message", "text": CPF_TEXT},
    )

    assert dry.status == 200
    assert dry.body["effect"] == "require_approval"
    assert "cpf" in dry.body["reason"].lower()
    assert [m["effect"] for m in dry.body["matched"]] == ["require_approval"]


def test_a_requester_cancels_and_nobody_else_can(
    acme: TestTenant, lambda_env: LocalResources
) -> None:
    admin, member = acme.user("admin"), acme.user("member")
    call("POST", "/api/policies", user=admin, body=CPF_RULE)
    approval_id = _ask(member, "msg-c").body["approval"]["id"]

    by_admin = call("POST", f"/api/approvals/{approval_id}/cancel", user=admin)
    by_member = call("POST", f"/api/approvals/{approval_id}/cancel", user=member)
    again = call("POST", f"/api/approvals/{approval_id}/cancel", user=member)

    assert (by_admin.status, by_admin.body["error"]["code"]) == (403, "not_the_requester")
    assert (by_member.status, by_member.body["status"]) == (200, "canceled")
    assert (again.status, again.body["error"]["code"]) == (409, "approval_not_pending")


def test_a_rejected_subject_stays_blocked(acme: TestTenant, lambda_env: LocalResources) -> None:
    admin, member = acme.user("admin"), acme.user("member")
    call("POST", "/api/policies", user=admin, body=CPF_RULE)
    approval_id = _ask(member, "msg-r").body["approval"]["id"]
    assert _decide(admin, approval_id, "rejected").body["status"] == "rejected"

    again = _ask(member, "msg-r")

    assert (again.status, again.body["error"]["code"]) == (403, "policy_blocked")


def test_asking_again_after_an_unswept_expiry_opens_a_new_request(
    acme: TestTenant, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    """A request past its expiry that the sweeper has not reached yet is expired by the gate
    when its subject is asked for again, as the sweeper would (status, audit row, event), and
    the subject gets a new request someone can still decide."""
    admin, member = acme.user("admin"), acme.user("member")
    call("POST", "/api/policies", user=admin, body=CPF_RULE)
    first = _ask(member, "msg-expiring").body["approval"]["id"]
    _backdate(owner_conn, first)

    again = _ask(member, "msg-expiring")

    assert again.status == 200, again.body
    assert again.body["verdict"] == "pending"
    second = again.body["approval"]["id"]
    assert second != first
    statuses = {
        str(row["id"]): row["status"]
        for row in owner_conn.execute(
            "SELECT id, status FROM alquimista_platform.approval_requests WHERE subject_id = %s",
            ("msg-expiring",),
        )
    }
    assert statuses == {first: "expired", second: "pending"}
    events = owner_conn.execute(
        "SELECT event_type FROM alquimista_platform.domain_outbox"
        " WHERE aggregate_id = %s ORDER BY seq",
        (first,),
    ).fetchall()
    assert [e["event_type"] for e in events] == ["approval.created", "approval.expired"]
    assert "approval.expired" in _audit_actions(admin)
    # the new request is the one that can be decided
    assert _decide(admin, second).status == 200
    assert _decide(admin, first).body["error"]["code"] in {
        "approval_expired",
        "approval_not_pending",
    }


def test_another_tenants_request_is_not_found(
    world: World, acme: TestTenant, lambda_env: LocalResources
) -> None:
    call("POST", "/api/policies", user=acme.user("admin"), body=CPF_RULE)
    approval_id = _ask(acme.user("member"), "msg-x").body["approval"]["id"]
    outsider = world.b.user("admin")

    assert call("GET", f"/api/approvals/{approval_id}", user=outsider).status == 404
    assert _decide(outsider, approval_id).status == 404
    assert call("POST", f"/api/approvals/{approval_id}/cancel", user=outsider).status == 404
    assert call("GET", "/api/approvals", user=outsider).body["items"] == []
    assert call("GET", "/api/policies", user=outsider).body["items"] == []
    unknown = str(uuid.uuid4())
    assert call("GET", f"/api/policies/{unknown}", user=outsider).status == 404


def test_a_decision_answers_when_the_request_was_opened_and_decided(
    acme: TestTenant, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    call("POST", "/api/policies", user=acme.user("admin"), body=CPF_RULE)
    approval_id = _ask(acme.user("member"), "msg-times").body["approval"]["id"]

    first = _decide(acme.user("admin"), approval_id)
    pending_created_at = first.body["created_at"]
    second = _decide(acme.user("admin2"), approval_id)

    stored = owner_conn.execute(
        "SELECT created_at, decided_at FROM alquimista_platform.approval_requests WHERE id = %s",
        (approval_id,),
    ).fetchone()
    assert stored is not None
    # still pending after the first: opened, not decided
    assert (first.body["status"], first.body["decided_at"]) == ("pending", None)
    assert datetime.fromisoformat(pending_created_at) == stored["created_at"]
    # the second reaches the quorum: both times are the stored ones
    assert second.body["status"] == "approved"
    assert datetime.fromisoformat(second.body["created_at"]) == stored["created_at"]
    assert datetime.fromisoformat(second.body["decided_at"]) == stored["decided_at"]


def test_the_default_effect_is_read_by_members_set_by_admins_and_decides_unmatched_subjects(
    acme: TestTenant, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    admin, member = acme.user("admin"), acme.user("member")
    # Given a tenant that never set its default: allow
    before = call("GET", "/api/policies/settings", user=member)
    assert (before.status, before.body) == (200, {"effect": "allow", "required_approvals": 1})

    # When its admin makes unmatched subjects need two approvals
    changed = call(
        "PUT",
        "/api/policies/settings",
        user=admin,
        body={"effect": "require_approval", "required_approvals": 2},
    )

    # Then members read it, a subject no rule matches is held for two approvals, and the
    # change is in the audit chain
    assert changed.status == 200, changed.body
    after = call("GET", "/api/policies/settings", user=member)
    assert after.body == {"effect": "require_approval", "required_approvals": 2}
    held = _ask(member, "msg-unmatched", text="bom dia")
    assert held.body["verdict"] == "pending"
    assert held.body["approval"]["required_approvals"] == 2
    assert "policy_settings.changed" in _audit_actions(admin)


@pytest.mark.parametrize(
    "body",
    [
        {"effect": "deny"},
        {"effect": "block", "required_approvals": 0},
        {"effect": "block", "required_approvals": 11},
        {"effect": "block", "unknown": 1},
    ],
)
def test_an_invalid_default_is_422_and_not_stored(
    acme: TestTenant, owner_conn: Conn, lambda_env: LocalResources, body: dict[str, Any]
) -> None:
    refused = call("PUT", "/api/policies/settings", user=acme.user("admin"), body=body)

    assert refused.status == 422, refused.body
    stored = owner_conn.execute(
        "SELECT count(*) AS n FROM alquimista_platform.policy_settings WHERE tenant_id = %s",
        (acme.id,),
    ).fetchone()
    assert stored is not None
    assert stored["n"] == 0
