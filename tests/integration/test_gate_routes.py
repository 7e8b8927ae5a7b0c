"""No route marked sensitive in the route table reaches its action without the gate: with a
rule that blocks everything, each one answers 403 ``policy_blocked``, changes nothing, and the
block is audited. A sensitive route without a recipe here fails the first test.

Also the gate's own semantics over the real database (``lambdas.shared.gate``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from lambdas.policies.matcher import Subject
from lambdas.shared import gate
from lambdas.shared.db import UnitOfWork
from lambdas.shared.routes import ROUTES
from lambdas.shared.runtime import get_runtime, reset_runtime
from scripts.devstack.aws_resources import LocalResources
from scripts.devstack.seed_catalog import find_agent
from tests.integration.conftest import World
from tests.support.events import http_event
from tests.support.factories import TestTenant, create_user
from tests.support.handlers import HandlerResult, call

Conn = psycopg.Connection[dict[str, Any]]
SALES_AGENT = find_agent("sdr-prospector")  # tenant a's plan (Professional) includes it


@dataclass(frozen=True)
class Sensitive:
    route_key: str
    run: Callable[[TestTenant], HandlerResult]
    # what the action would change, read as the owner: must not move when it is blocked
    probe: Callable[[Conn, TestTenant], int]


def _activations(conn: Conn, tenant: TestTenant) -> int:
    row = conn.execute(
        "SELECT count(*) AS n FROM alquimista_platform.agent_activations WHERE tenant_id = %s",
        (tenant.id,),
    ).fetchone()
    return int(row["n"]) if row else 0


def _requests(conn: Conn, tenant: TestTenant) -> int:
    row = conn.execute(
        "SELECT count(*) AS n FROM alquimista_platform.approval_requests WHERE tenant_id = %s",
        (tenant.id,),
    ).fetchone()
    return int(row["n"]) if row else 0


def _answers(conn: Conn, tenant: TestTenant) -> int:
    row = conn.execute(
        "SELECT count(*) AS n FROM chat.messages WHERE tenant_id = %s AND role = 'assistant'",
        (tenant.id,),
    ).fetchone()
    return int(row["n"]) if row else 0


def _outreach_sent(conn: Conn, tenant: TestTenant) -> int:
    row = conn.execute(
        "SELECT count(*) AS n FROM nigredo_leads.outreach_messages WHERE tenant_id = %s",
        (tenant.id,),
    ).fetchone()
    return int(row["n"]) if row else 0


def _chat_message(tenant: TestTenant) -> HandlerResult:
    member = tenant.user("member")
    session = call("POST", "/api/chat/sessions", user=member, body={"title": "Gate"})
    assert session.status == 201, session.body
    return call(
        "POST",
        f"/api/chat/sessions/{session.body['id']}/messages",
        user=member,
        body={"content": "Qual é o prazo de reembolso?"},
    )


def _outreach(tenant: TestTenant) -> HandlerResult:
    admin = tenant.user("admin")
    lead = call(
        "POST",
        "/api/leads",
        user=admin,
        body={
            "full_name": "Lia Castro",
            "email": "lia.castro@example.com",
            "legal_basis": "legitimate_interest",
        },
    )
    assert lead.status == 201, lead.body
    return call(
        "POST",
        f"/api/leads/{lead.body['id']}/outreach",
        user=admin,
        body={"subject": "Olá", "body": "Podemos conversar?", "purpose": "prospecting"},
        headers={"Idempotency-Key": "gate-outreach"},
    )


SENSITIVE: tuple[Sensitive, ...] = (
    Sensitive(
        "POST /api/agents/{agent_id}/activate",
        lambda t: call("POST", f"/api/agents/{SALES_AGENT.id}/activate", user=t.user("admin")),
        _activations,
    ),
    Sensitive(
        "POST /api/approvals",
        lambda t: call(
            "POST",
            "/api/approvals",
            user=t.user("member"),
            body={
                "subject_kind": "lead.outreach",
                "subject_id": "lead-1",
                "action_type": "email.send",
                "summary": "First e-mail to a lead",
                "text": "Olá!",
            },
        ),
        _requests,
    ),
    # A provider that cannot be reached (see the test's environment): a blocked message that
    # still called it would answer 503, not 403.
    Sensitive("POST /api/chat/sessions/{session_id}/messages", _chat_message, _answers),
    Sensitive("POST /api/leads/{lead_id}/outreach", _outreach, _outreach_sent),
)


def _rule(tenant: TestTenant, effect: str, **extra: Any) -> dict[str, Any]:
    created = call(
        "POST",
        "/api/policies",
        user=tenant.user("admin"),
        body={"name": f"{effect} everything", "effect": effect, "matcher": {}, **extra},
    )
    assert created.status == 201, created.body
    return dict(created.body)


def test_every_sensitive_route_has_a_recipe() -> None:
    marked = {route.route_key for route in ROUTES if route.sensitive}
    assert marked == {recipe.route_key for recipe in SENSITIVE}


@pytest.mark.parametrize("recipe", SENSITIVE, ids=lambda r: r.route_key)
def test_a_blocking_rule_stops_each_sensitive_route_with_no_state_change(
    recipe: Sensitive,
    world: World,
    owner_conn: Conn,
    lambda_env: LocalResources,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_BASE_URL", "http://127.0.0.1:9/v1")  # the discard port: unreachable
    monkeypatch.setenv("LLM_API_KEY", "offline-unused")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    reset_runtime()  # the settings are read again with this environment
    # Given a tenant whose policies block everything
    tenant = world.a
    _rule(tenant, "block")
    before = recipe.probe(owner_conn, tenant)

    # When the sensitive route is called
    result = recipe.run(tenant)

    # Then it is refused, nothing changed, and the block is audited with the subject's hash only
    assert (result.status, result.body["error"]["code"]) == (403, "policy_blocked")
    assert recipe.probe(owner_conn, tenant) == before
    blocked = owner_conn.execute(
        """
        SELECT a.metadata FROM alquimista_platform.audit_logs AS a
        WHERE a.tenant_id = %s AND a.action = 'policy_evaluation.blocked'
        """,
        (tenant.id,),
    ).fetchall()
    assert len(blocked) == 1
    assert blocked[0]["metadata"]["verdict"] == "block"
    assert len(blocked[0]["metadata"]["inputs_hash"]) == 64
    events = owner_conn.execute(
        """
        SELECT count(*) AS n FROM alquimista_platform.domain_outbox
        WHERE tenant_id = %s AND event_type = 'policy_evaluation.blocked'
        """,
        (tenant.id,),
    ).fetchone()
    assert events is not None
    assert events["n"] == 1


def test_without_rules_activation_behaves_as_before_and_is_evaluated_not_audited(
    world: World, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    activated = SENSITIVE[0].run(world.a)

    assert activated.status == 200, activated.body
    evaluation = owner_conn.execute(
        """
        SELECT subject_kind, verdict, rule_id, inputs_hash
        FROM alquimista_platform.policy_evaluations WHERE tenant_id = %s
        """,
        (world.a.id,),
    ).fetchone()
    assert evaluation is not None
    assert (evaluation["subject_kind"], evaluation["verdict"], evaluation["rule_id"]) == (
        "agent.action",
        "allow",
        None,
    )


def test_an_activation_held_for_approval_runs_once_approved(
    world: World, owner: Conn, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    tenant = world.a
    _rule(
        tenant,
        "require_approval",
        required_approvals=1,
        matcher={"subject_kinds": ["agent.action"]},
    )

    held = SENSITIVE[0].run(tenant)
    assert (held.status, held.body["error"]["code"]) == (409, "approval_pending")
    approval_id = held.body["error"]["details"][0]["approval_request_id"]
    assert _activations(owner_conn, tenant) == 0

    # the requesting admin cannot approve their own request; the member cannot decide
    self_approval = call(
        "POST",
        f"/api/approvals/{approval_id}/decisions",
        user=tenant.user("admin"),
        body={"decision": "approved", "reason": "mine"},
    )
    assert (self_approval.status, self_approval.body["error"]["code"]) == (403, "self_approval")

    # another admin approves: the retried activation goes through, on that approval
    other = create_user(owner, tenant.id, "admin")
    approved = call(
        "POST",
        f"/api/approvals/{approval_id}/decisions",
        user=other,
        body={"decision": "approved", "reason": "agreed in the weekly review"},
    )
    assert approved.body["status"] == "approved"
    activated = SENSITIVE[0].run(tenant)
    assert activated.status == 200, activated.body
    assert _activations(owner_conn, tenant) == 1


def _uow(tenant: TestTenant, user_role: str = "member") -> UnitOfWork:
    """A unit of work in a request scope authorized as ``tenant``'s member, as a route has."""
    scope = get_runtime().request_scope(request_id=str(uuid.uuid4()), read_only=False)
    event = http_event("POST", "/api/approvals", claims=tenant.user(user_role).claims())
    scope.authorize(event, "approvals:request")
    return UnitOfWork(scope, tenant.id)


def test_recheck_refuses_an_approval_that_is_no_longer_approved(
    world: World, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    tenant = world.a
    _rule(tenant, "require_approval", required_approvals=1)
    subject = Subject(kind="lead.outreach", id="lead-9", text="Olá")
    with _uow(tenant) as uow:
        pending = gate.authorize(uow, subject, summary="outreach")
        uow.commit()
    assert pending.verdict == "pending"
    call(
        "POST",
        f"/api/approvals/{pending.approval_id}/decisions",
        user=tenant.user("admin"),
        body={"decision": "approved", "reason": "fine"},
    )
    with _uow(tenant) as uow:
        allowed = gate.authorize(uow, subject, summary="outreach")
        assert (allowed.verdict, allowed.approval_id) == ("allow", pending.approval_id)
        gate.recheck(uow, allowed)  # still approved: passes
    with _uow(tenant) as uow:
        allowed = gate.authorize(uow, subject, summary="outreach")
        # When the approval is withdrawn between the check and the use (only a test can)
        with owner_conn.transaction():
            owner_conn.execute("SET LOCAL session_replication_role = replica")
            owner_conn.execute(
                "UPDATE alquimista_platform.approval_requests SET status = 'canceled'"
                " WHERE id = %s",
                (pending.approval_id,),
            )
        # Then the re-check after the action refuses it
        with pytest.raises(gate.ApprovalWithdrawn):
            gate.recheck(uow, allowed)
