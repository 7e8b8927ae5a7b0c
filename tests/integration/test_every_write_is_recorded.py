"""Every route that changes state leaves exactly one audit row and its outbox event, in its own
transaction, unless the route table exempts it with a reason (issue 11 §4).

The recipes below drive each writing route once, successfully, through its handler. A route
added to the table without a recipe (and without an exemption) fails
``test_every_writing_route_has_a_recipe_or_an_exemption``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from lambdas.approvals import service as approvals
from lambdas.approvals.repository import ApprovalsUnitOfWork
from lambdas.policies import service as policies
from lambdas.policies.models import RuleDraft
from lambdas.policies.repository import PoliciesUnitOfWork
from lambdas.shared.routes import ROUTES
from lambdas.shared.runtime import WRITERS
from lambdas.shared.scope import RequestScope
from scripts.devstack.aws_resources import DEV_WEBHOOK_SECRETS, LocalResources
from scripts.devstack.llm_server import start_llm_server
from scripts.devstack.seed_catalog import (
    dev_subscription_ids,
    find_agent,
    find_plan,
    find_subnucleo,
)
from scripts.devstack.stack import reset_lambda_caches
from scripts.devstack.webhook_events import stripe_delivery, stripe_event
from tests.integration.conftest import World
from tests.support.chat import runtime_database
from tests.support.database import TestDatabase
from tests.support.factories import TestUser
from tests.support.handlers import HandlerResult, call

Conn = psycopg.Connection[dict[str, Any]]
SALES_AGENT = find_agent("sdr-prospector")  # Professional (tenant a) includes it
MARKETING = find_subnucleo("marketing")


@dataclass
class Story:
    world: World
    db: TestDatabase | None = None
    trial_id: str | None = None
    rule_id: str | None = None
    approval_id: str | None = None
    lead_id: str | None = None
    conflict_id: str | None = None
    campaign_id: str | None = None
    meeting_id: str | None = None
    invited_id: str | None = None
    form_id: str | None = None
    reachable_lead_id: str | None = None
    chat: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    route_key: str
    action: str  # the audit action and outbox event type the write records
    run: Callable[[Story], HandlerResult]
    # what the story needs first, outside the counted request
    prepare: Callable[[Story], None] | None = None


def _webhook(story: Story) -> HandlerResult:
    _, subscription, customer = dev_subscription_ids(story.world.a.id)
    event = stripe_event("invoice.payment_failed", subscription=subscription, customer=customer)
    delivery = stripe_delivery(DEV_WEBHOOK_SECRETS["stripe"], event)
    path, _, query = delivery.path.partition("?")
    return call("POST", path, raw_body=delivery.body, headers=delivery.headers, query=query)


def _start_trial(story: Story) -> HandlerResult:
    result = call(
        "POST",
        "/api/billing/trials",
        user=story.world.b.user("admin"),
        body={"subnucleo_id": str(MARKETING.id)},
    )
    story.trial_id = result.body.get("id") if isinstance(result.body, dict) else None
    return result


OUTREACH_RULE = {
    "name": "outreach needs two approvals",
    "effect": "require_approval",
    "required_approvals": 2,
    "matcher": {"subject_kinds": ["lead.outreach"]},
}


def _create_rule(story: Story) -> HandlerResult:
    result = call("POST", "/api/policies", user=story.world.a.user("admin"), body=OUTREACH_RULE)
    story.rule_id = result.body.get("rule_id") if isinstance(result.body, dict) else None
    return result


def _ask_approval(story: Story) -> HandlerResult:
    result = call(
        "POST",
        "/api/approvals",
        user=story.world.a.user("member"),
        body={
            "subject_kind": "lead.outreach",
            "subject_id": "lead-1",
            "action_type": "email.send",
            "summary": "First e-mail to a lead",
        },
    )
    if isinstance(result.body, dict) and result.body.get("approval"):
        story.approval_id = result.body["approval"]["id"]
    return result


def _create_lead(story: Story) -> HandlerResult:
    result = call(
        "POST",
        "/api/leads",
        user=story.world.a.user("member"),
        body={"full_name": "Lia Castro", "email": "lia.castro@example.com"},
    )
    story.lead_id = result.body.get("id") if isinstance(result.body, dict) else None
    return result


def _stale_push(story: Story) -> HandlerResult:
    mutation = {
        "client_mutation_id": "m-1",
        "op": "update",
        "id": story.lead_id,
        "base_version": 1,
        "fields": {"full_name": "Lia C."},
    }
    result = call(
        "POST",
        "/api/leads/sync",
        user=story.world.a.user("member"),
        body={"device_id": "phone-1", "mutations": [mutation]},
    )
    if isinstance(result.body, dict):
        story.conflict_id = result.body["results"][0]["conflict_id"]
    return result


def _delete_lead(story: Story) -> HandlerResult:
    user = story.world.a.user("member")
    read = call("GET", f"/api/leads/{story.lead_id}", user=user)
    return call(
        "DELETE",
        f"/api/leads/{story.lead_id}",
        user=user,
        headers={"If-Match": read.headers["ETag"]},
    )


def _create_campaign(story: Story) -> HandlerResult:
    result = call(
        "POST",
        "/api/leads/campaigns",
        user=story.world.a.user("member"),
        body={"name": "Recorded", "channel": "email"},
    )
    story.campaign_id = result.body.get("id") if isinstance(result.body, dict) else None
    return result


def _schedule(story: Story) -> HandlerResult:
    result = call(
        "POST",
        f"/api/leads/{story.lead_id}/meetings",
        user=story.world.a.user("member"),
        body={"scheduled_for": "2031-05-05T15:00:00Z"},
    )
    story.meeting_id = result.body.get("id") if isinstance(result.body, dict) else None
    return result


def _meeting_step(step: str, version: int, body: Any = None) -> Callable[[Story], HandlerResult]:
    return lambda s: call(
        "POST",
        f"/api/leads/meetings/{s.meeting_id}/{step}",
        user=s.world.a.user("member"),
        body=body,
        headers={"If-Match": f'"{version}"'},
    )


def _pipeline_recipes() -> tuple[Recipe, ...]:
    return (
        Recipe("POST /api/leads/campaigns", "campaign.created", _create_campaign),
        Recipe(
            "POST /api/leads/campaigns/{campaign_id}/status",
            "campaign.status_changed",
            lambda s: call(
                "POST",
                f"/api/leads/campaigns/{s.campaign_id}/status",
                user=s.world.a.user("member"),
                body={"status": "active"},
                headers={"If-Match": '"1"'},
            ),
        ),
        Recipe(
            "DELETE /api/leads/campaigns/{campaign_id}",
            "campaign.deleted",
            lambda s: call(
                "DELETE",
                f"/api/leads/campaigns/{s.campaign_id}",
                user=s.world.a.user("member"),
                headers={"If-Match": '"2"'},
            ),
        ),
        Recipe(
            "POST /api/leads/{lead_id}/interactions",
            "interaction.recorded",
            lambda s: call(
                "POST",
                f"/api/leads/{s.lead_id}/interactions",
                user=s.world.a.user("member"),
                body={"channel": "phone", "direction": "outbound", "content": "Ligação"},
            ),
        ),
        Recipe("POST /api/leads/{lead_id}/meetings", "meeting.scheduled", _schedule),
        Recipe(
            "POST /api/leads/meetings/{meeting_id}/reschedule",
            "meeting.rescheduled",
            _meeting_step("reschedule", 1, {"scheduled_for": "2031-05-06T15:00:00Z"}),
        ),
        Recipe(
            "POST /api/leads/meetings/{meeting_id}/complete",
            "meeting.completed",
            _meeting_step("complete", 2),
        ),
        Recipe("POST /api/leads/{lead_id}/meetings", "meeting.scheduled", _schedule),
        Recipe(
            "POST /api/leads/meetings/{meeting_id}/cancel",
            "meeting.canceled",
            _meeting_step("cancel", 1),
        ),
    )


def _leads_recipes() -> tuple[Recipe, ...]:
    def member(story: Story) -> TestUser:
        return story.world.a.user("member")

    return (
        Recipe("POST /api/leads", "lead.created", _create_lead),
        Recipe(
            "PATCH /api/leads/{lead_id}",
            "lead.updated",
            lambda s: call(
                "PATCH",
                f"/api/leads/{s.lead_id}",
                user=member(s),
                body={"status": "contacted"},
                headers={"If-Match": '"1"'},
            ),
        ),
        Recipe(
            "POST /api/leads/{lead_id}/consents",
            "lead.consent_recorded",
            lambda s: call(
                "POST",
                f"/api/leads/{s.lead_id}/consents",
                user=member(s),
                body={"action": "withdrawn", "channel": "email"},
            ),
        ),
        *_pipeline_recipes(),
        Recipe("POST /api/leads/sync", "sync.batch_applied", _stale_push),
        Recipe(
            "POST /api/leads/conflicts/{conflict_id}/resolve",
            "sync_conflict.resolved",
            lambda s: call(
                "POST",
                f"/api/leads/conflicts/{s.conflict_id}/resolve",
                user=member(s),
                body={"resolution": "keep_mine"},
            ),
        ),
        Recipe(
            "POST /api/leads/dsr",
            "data_subject_request.completed",
            lambda s: call(
                "POST",
                "/api/leads/dsr",
                user=s.world.a.user("admin"),
                body={"lead_id": s.lead_id, "kind": "access"},
            ),
        ),
        Recipe("DELETE /api/leads/{lead_id}", "lead.deleted", _delete_lead),
    )


def _invite(story: Story) -> HandlerResult:
    result = call(
        "POST",
        "/api/members/invitations",
        user=story.world.a.user("admin"),
        body={"email": "recorded-invitee@example.com", "role": "viewer"},
    )
    if isinstance(result.body, dict) and "member" in result.body:
        story.invited_id = result.body["member"]["user_id"]
    return result


def _open_session(story: Story) -> HandlerResult:
    result = call(
        "POST", "/api/chat/sessions", user=story.world.a.user("member"), body={"title": "Dúvidas"}
    )
    story.chat["session"] = str(result.body.get("id")) if isinstance(result.body, dict) else ""
    return result


def _ask(story: Story) -> HandlerResult:
    result = call(
        "POST",
        f"/api/chat/sessions/{story.chat['session']}/messages",
        user=story.world.a.user("member"),
        body={"content": "Qual é o prazo de reembolso?"},
    )
    if isinstance(result.body, dict) and result.body.get("answer"):
        story.chat["answer"] = str(result.body["answer"]["id"])
    return result


def _approved_question(story: Story) -> None:
    assert story.db is not None
    database = runtime_database(story.db)
    tenant = story.world.a

    def uow(cls: Any) -> Callable[[], Any]:
        return lambda: cls(RequestScope(lambda: database, writers=WRITERS), tenant.id)

    policies.create_rule(
        uow(PoliciesUnitOfWork),
        RuleDraft(
            name="Contratos precisam de aprovação",
            effect="require_approval",
            required_approvals=1,
            matcher={"subject_kinds": ["chat.message"], "keywords": ["contrato"]},
        ),
        actor_id=tenant.user("admin").id,
    )
    pending = call(
        "POST",
        f"/api/chat/sessions/{story.chat['session']}/messages",
        user=tenant.user("member"),
        body={"content": "Resuma o contrato"},
    )
    assert pending.status == 201, pending.body
    story.chat["pending"] = str(pending.body["question"]["id"])
    approvals.decide(
        uow(ApprovalsUnitOfWork),
        uuid.UUID(pending.body["verdict"]["approval_request_id"]),
        decider=tenant.user("admin").id,
        decision="approved",
        reason="ok",
    )
    database.close()


def _create_form(story: Story) -> HandlerResult:
    result = call(
        "POST",
        "/api/leads/forms",
        user=story.world.a.user("admin"),
        body={
            "name": "Contato do site",
            "fields": ["full_name", "email"],
            "consent_text": "Aceito receber o contato da equipe comercial.",
            "consent_text_version": "v1",
            "purposes": ["prospecting"],
        },
    )
    if isinstance(result.body, dict):
        story.form_id = result.body.get("id") or result.body.get("form_id")
    return result


def _reachable_lead(story: Story) -> None:
    created = call(
        "POST",
        "/api/leads",
        user=story.world.a.user("member"),
        body={
            "full_name": "Rui Prado",
            "email": "rui.prado@example.com",
            "legal_basis": "legitimate_interest",
        },
    )
    assert created.status == 201, created.body
    story.reachable_lead_id = created.body["id"]


INTAKE_RECIPES: tuple[Recipe, ...] = (
    Recipe("POST /api/leads/forms", "lead_form.created", _create_form),
    Recipe(
        "POST /api/leads/forms/{form_id}/submissions",
        "form_submission.received",
        lambda s: call(
            "POST",
            f"/api/leads/forms/{s.form_id}/submissions",
            body={
                "fields": {"full_name": "Ana Lima", "email": "ana.lima@example.com"},
                "consent": True,
                "consent_text_version": "v1",
            },
        ),
    ),
    Recipe(
        "POST /api/leads/imports",
        "lead_import.requested",
        lambda s: call("POST", "/api/leads/imports", user=s.world.a.user("member"), body={}),
    ),
    Recipe(
        "POST /api/leads/{lead_id}/outreach",
        "lead.outreach_sent",
        lambda s: call(
            "POST",
            f"/api/leads/{s.reachable_lead_id}/outreach",
            user=s.world.a.user("member"),
            body={"subject": "Olá", "body": "Podemos conversar?", "purpose": "prospecting"},
            headers={"Idempotency-Key": "recorded-outreach"},
        ),
        prepare=_reachable_lead,
    ),
)


CHAT_RECIPES: tuple[Recipe, ...] = (
    Recipe("POST /api/chat/sessions", "chat_session.created", _open_session),
    Recipe("POST /api/chat/sessions/{session_id}/messages", "chat_message.answered", _ask),
    Recipe(
        "POST /api/chat/sessions/{session_id}/messages/{message_id}/feedback",
        "chat_message.rated",
        lambda s: call(
            "POST",
            f"/api/chat/sessions/{s.chat['session']}/messages/{s.chat['answer']}/feedback",
            user=s.world.a.user("member"),
            body={"rating": 5},
        ),
    ),
    Recipe(
        "POST /api/chat/sessions/{session_id}/messages/{message_id}/resume",
        "chat_message.answered",
        lambda s: call(
            "POST",
            f"/api/chat/sessions/{s.chat['session']}/messages/{s.chat['pending']}/resume",
            user=s.world.a.user("member"),
        ),
        prepare=_approved_question,
    ),
    Recipe(
        "POST /api/chat/sessions/{session_id}/close",
        "chat_session.closed",
        lambda s: call(
            "POST", f"/api/chat/sessions/{s.chat['session']}/close", user=s.world.a.user("member")
        ),
    ),
    Recipe(
        "POST /api/chat/documents",
        "document.upload_requested",
        lambda s: call(
            "POST",
            "/api/chat/documents",
            user=s.world.a.user("member"),
            body={"title": "Manual", "filename": "manual.pdf"},
        ),
    ),
)


# In story order: each recipe may rely on what the ones before it did.
RECIPES: tuple[Recipe, ...] = (
    Recipe("POST /api/billing/webhooks/{provider}", "payment.event_applied", _webhook),
    Recipe(
        "POST /api/agents/{agent_id}/activate",
        "agent.activated",
        lambda s: call(
            "POST", f"/api/agents/{SALES_AGENT.id}/activate", user=s.world.a.user("admin")
        ),
    ),
    Recipe(
        "POST /api/agents/{agent_id}/deactivate",
        "agent.deactivated",
        lambda s: call(
            "POST", f"/api/agents/{SALES_AGENT.id}/deactivate", user=s.world.a.user("admin")
        ),
    ),
    Recipe(
        "POST /api/billing/change-plan",
        "subscription.plan_changed",
        lambda s: call(
            "POST",
            "/api/billing/change-plan",
            user=s.world.a.user("admin"),
            body={"plan_id": str(find_plan("enterprise").id)},
        ),
    ),
    Recipe(
        "POST /api/billing/cancel",
        "subscription.canceled",
        lambda s: call("POST", "/api/billing/cancel", user=s.world.b.user("admin")),
    ),
    Recipe(
        "POST /api/billing/subscribe",
        "subscription.created",
        lambda s: call(
            "POST",
            "/api/billing/subscribe",
            user=s.world.b.user("admin"),
            body={"plan_id": str(find_plan("starter").id), "billing_interval": "month"},
        ),
    ),
    Recipe("POST /api/billing/trials", "trial.started", _start_trial),
    Recipe(
        "POST /api/billing/trials/{trial_id}/usage",
        "trial.used",
        lambda s: call(
            "POST", f"/api/billing/trials/{s.trial_id}/usage", user=s.world.b.user("member")
        ),
    ),
    Recipe("POST /api/policies", "policy_rule.created", _create_rule),
    Recipe(
        "POST /api/policies/evaluate",
        "policy_evaluation.simulated",
        lambda s: call(
            "POST",
            "/api/policies/evaluate",
            user=s.world.a.user("member"),
            body={"kind": "lead.outreach", "text": "Olá"},
        ),
    ),
    Recipe(
        "PUT /api/policies/{rule_id}",
        "policy_rule.updated",
        lambda s: call(
            "PUT",
            f"/api/policies/{s.rule_id}",
            user=s.world.a.user("admin"),
            body=OUTREACH_RULE | {"priority": 10},
        ),
    ),
    Recipe(
        "PUT /api/policies/settings",
        "policy_settings.changed",
        lambda s: call(
            "PUT",
            "/api/policies/settings",
            user=s.world.a.user("admin"),
            body={"effect": "allow", "required_approvals": 1},
        ),
    ),
    Recipe("POST /api/approvals", "approval.created", _ask_approval),
    Recipe(
        "POST /api/approvals/{approval_id}/decisions",
        "approval.decided",
        lambda s: call(
            "POST",
            f"/api/approvals/{s.approval_id}/decisions",
            user=s.world.a.user("admin"),
            body={"decision": "approved", "reason": "the lead opted in"},
        ),
    ),
    Recipe(
        "POST /api/approvals/{approval_id}/cancel",
        "approval.canceled",
        lambda s: call(
            "POST", f"/api/approvals/{s.approval_id}/cancel", user=s.world.a.user("member")
        ),
    ),
    Recipe(
        "POST /api/policies/{rule_id}/deactivate",
        "policy_rule.deactivated",
        lambda s: call(
            "POST", f"/api/policies/{s.rule_id}/deactivate", user=s.world.a.user("admin")
        ),
    ),
    Recipe("POST /api/members/invitations", "membership.invited", _invite),
    Recipe(
        "PATCH /api/members/{user_id}",
        "membership.role_changed",
        lambda s: call(
            "PATCH",
            f"/api/members/{s.invited_id}",
            user=s.world.a.user("admin"),
            body={"role": "member"},
        ),
    ),
    Recipe(
        "DELETE /api/members/{user_id}",
        "membership.revoked",
        lambda s: call("DELETE", f"/api/members/{s.invited_id}", user=s.world.a.user("admin")),
    ),
    Recipe(
        "POST /api/billing/commercial-requests",
        "commercial_request.created",
        lambda s: call(
            "POST",
            "/api/billing/commercial-requests",
            body={
                "company_name": "Empresa Exemplo Ltda",
                "contact_name": "Contato Exemplo",
                "email": "contato@example.com",
                "consent_given": True,
            },
        ),
    ),
    *_leads_recipes(),
    *INTAKE_RECIPES,
    *CHAT_RECIPES,
)


@pytest.fixture
def llm(lambda_env: LocalResources, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The offline provider the chat recipes ask."""
    server = start_llm_server()
    monkeypatch.setenv("LLM_BASE_URL", server.base_url)
    monkeypatch.setenv("LLM_API_KEY", server.api_key)
    reset_lambda_caches()
    yield
    server.stop()


def _writing_routes() -> set[str]:
    return {r.route_key for r in ROUTES if r.method != "GET" and r.audit_exempt is None}


def test_every_writing_route_has_a_recipe_or_an_exemption() -> None:
    recipes = {recipe.route_key for recipe in RECIPES}

    assert _writing_routes() - recipes == set(), "writing routes nobody checks for an audit row"
    assert recipes - _writing_routes() == set(), "recipes for routes that are gone or exempt"


def test_exemptions_state_a_reason() -> None:
    for route in ROUTES:
        if route.audit_exempt is not None:
            assert len(route.audit_exempt.strip()) >= 10, route.route_key


def _counts(conn: Conn) -> tuple[int, int]:
    row = conn.execute(
        """
        SELECT (SELECT count(*) FROM alquimista_platform.audit_logs) AS audit,
               (SELECT count(*) FROM alquimista_platform.domain_outbox) AS events
        """
    ).fetchone()
    assert row is not None
    return int(row["audit"]), int(row["events"])


def _latest(conn: Conn) -> dict[str, Any]:
    audit = conn.execute(
        """
        SELECT action, resource_id, outcome FROM alquimista_platform.audit_logs
        ORDER BY created_at DESC LIMIT 1
        """
    ).fetchone()
    event = conn.execute(
        """
        SELECT event_type, aggregate_id FROM alquimista_platform.domain_outbox
        ORDER BY created_at DESC LIMIT 1
        """
    ).fetchone()
    assert audit is not None
    assert event is not None
    return {**audit, **event}


def test_each_writing_route_records_one_audit_row_and_its_event(
    world: World, owner_conn: Conn, lambda_env: LocalResources, db: TestDatabase, llm: None
) -> None:
    story = Story(world, db)
    for recipe in RECIPES:
        if recipe.prepare is not None:
            recipe.prepare(story)
        # Given the counts before the request
        before = _counts(owner_conn)

        # When the route succeeds
        result = recipe.run(story)
        assert result.status in {200, 201}, (recipe.route_key, result.status, result.body)

        # Then exactly one audit row and one event were added, under the same name
        after = _counts(owner_conn)
        assert (after[0] - before[0], after[1] - before[1]) == (1, 1), recipe.route_key
        latest = _latest(owner_conn)
        assert latest["action"] == latest["event_type"] == recipe.action, recipe.route_key
        assert latest["resource_id"] == latest["aggregate_id"]
        assert latest["outcome"] == "success"


def test_a_failed_write_leaves_no_audit_row_and_no_event(
    world: World, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    # Given tenant b (Starter), whose plan does not cover the sales agent
    before = _counts(owner_conn)

    # When activating it is refused
    refused = call("POST", f"/api/agents/{SALES_AGENT.id}/activate", user=world.b.user("admin"))

    # Then nothing was recorded as a success
    assert refused.status == 409
    assert _counts(owner_conn) == before


def test_a_public_write_is_recorded_in_the_platform_chain_not_a_tenant_chain(
    world: World, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    # When a public route writes with no tenant
    next(r for r in RECIPES if r.action == "commercial_request.created").run(Story(world))
    [commercial] = [r for r in RECIPES if r.action == "commercial_request.created"]
    commercial.run(Story(world))

    # Then its audit row is in the reserved platform tenant's chain, by an anonymous actor
    row = owner_conn.execute(
        """
        SELECT tenant_id, actor_type, seq FROM alquimista_platform.audit_logs
        WHERE action = 'commercial_request.created'
        """
    ).fetchone()
    assert row is not None
    assert str(row["tenant_id"]) == "00000000-0000-0000-0000-000000000000"
    assert row["actor_type"] == "anonymous"


def _denials(conn: Conn) -> list[dict[str, Any]]:
    return conn.execute(
        """
        SELECT tenant_id, actor_user_id, actor_type, action, resource_type, resource_id,
               metadata
        FROM alquimista_platform.audit_logs WHERE outcome = 'denied' ORDER BY created_at
        """
    ).fetchall()


def test_a_member_refused_by_their_role_is_audited_as_denied_also_on_a_read(
    world: World, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    member = world.a.user("member")

    # When a member tries an admin write and an admin read
    write = call("POST", "/api/billing/cancel", user=member)
    read = call("GET", "/api/billing/payment-events", user=member)

    # Then both are 403 and both attempts are in tenant a's chain, as that member, denied
    assert (write.status, read.status) == (403, 403)
    denials = _denials(owner_conn)
    assert [(d["resource_id"], d["metadata"]) for d in denials] == [
        ("POST /api/billing/cancel", {"permission": "billing:manage"}),
        ("GET /api/billing/payment-events", {"permission": "billing:manage"}),
    ]
    assert {(d["tenant_id"], d["actor_user_id"], d["action"]) for d in denials} == {
        (world.a.id, member.id, "access.denied")
    }
    # and nothing else was written
    assert call("GET", "/api/billing/subscription", user=world.a.user("admin")).status == 200


def test_a_webhook_with_a_bad_signature_is_audited_as_denied_in_the_platform_chain(
    world: World, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    _, subscription, customer = dev_subscription_ids(world.a.id)
    event = stripe_event("invoice.paid", subscription=subscription, customer=customer)
    delivery = stripe_delivery("whsec_not_the_secret", event)
    path, _, query = delivery.path.partition("?")

    refused = call("POST", path, raw_body=delivery.body, headers=delivery.headers, query=query)

    assert refused.status == 401
    (denial,) = _denials(owner_conn)
    assert str(denial["tenant_id"]) == "00000000-0000-0000-0000-000000000000"
    assert (denial["action"], denial["resource_id"]) == ("webhook.denied", "stripe")
