"""The RBAC contract, over HTTP through the local gateway: every route in the shared table,
for each of {no token, viewer, member, admin, another tenant's admin} → the expected status.

A route added to the table without an entry here fails ``test_every_route_has_a_contract``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from lambdas.chat.models import DocumentDraft
from lambdas.shared.routes import ROUTES, Route
from scripts.devstack.aws_resources import DEV_WEBHOOK_SECRETS
from scripts.devstack.seed_catalog import find_agent, find_plan, find_subnucleo
from scripts.devstack.webhook_events import stripe_delivery, stripe_event
from tests.api.conftest import ApiClient, ApiWorld
from tests.support.chat import OwnerUnitOfWork
from tests.support.factories import create_trial, create_user
from tests.support.governance import RULE_DRAFT, create_approval, create_rule
from tests.support.leads_factories import (
    create_campaign,
    create_conflict,
    create_lead,
    create_meeting,
    create_subject_request,
)

CALLERS = ("none", "viewer", "member", "admin", "other_admin")


@dataclass(frozen=True)
class Call:
    path: str
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


Build = Callable[[ApiWorld, ApiClient], Call]


def _status(none: int, viewer: int, member: int, admin: int, other: int) -> dict[str, int]:
    return dict(zip(CALLERS, (none, viewer, member, admin, other), strict=True))


READ = _status(401, 200, 200, 200, 403)
ADMIN = _status(401, 403, 403, 200, 403)
ADMIN_CREATES = _status(401, 403, 403, 201, 403)
WRITE = _status(401, 403, 200, 200, 403)
MEMBER_READ = _status(401, 403, 200, 200, 403)  # policies: viewers do not see them
PUBLIC_CREATES = _status(201, 201, 201, 201, 201)
CHAT = _status(401, 403, 200, 200, 403)  # chat:use: members and admins, not viewers
CHAT_CREATES = _status(401, 403, 201, 201, 403)
CHAT_OWN = _status(401, 403, 200, 404, 403)
SALES_AGENT = find_agent("sdr-prospector")  # in tenant A's plan
MARKETING = find_subnucleo("marketing")  # in no plan of the world: free to trial


def _without_subscription(world: ApiWorld, api: ApiClient) -> None:
    with api.db.owner() as conn:
        conn.execute(
            "UPDATE public.subscriptions SET status = 'canceled' WHERE tenant_id = %s",
            (world.a.id,),
        )


def _subscribe(world: ApiWorld, api: ApiClient) -> Call:
    _without_subscription(world, api)
    return Call("/api/billing/subscribe", {"plan_id": str(find_plan("starter").id)})


def _trial_usage(world: ApiWorld, api: ApiClient) -> Call:
    # one trial per tenant and subnucleo: the callers of a route share the first one made
    with api.db.owner() as conn:
        found = conn.execute(
            "SELECT id FROM public.trials WHERE tenant_id = %s AND subnucleo_id = %s",
            (world.a.id, MARKETING.id),
        ).fetchone()
        trial_id = found["id"] if found else create_trial(conn, world.a, subnucleo_id=MARKETING.id)
    return Call(f"/api/billing/trials/{trial_id}/usage")


def _rule(world: ApiWorld, api: ApiClient, suffix: str = "", body: Any = None) -> Call:
    with api.db.owner() as conn:
        rule_id = create_rule(conn, world.a)
    return Call(f"/api/policies/{rule_id}{suffix}", body)


def _approval(world: ApiWorld, api: ApiClient, suffix: str = "", body: Any = None) -> Call:
    with api.db.owner() as conn:
        approval_id = create_approval(conn, world.a, world.a.user("member"))
    return Call(f"/api/approvals/{approval_id}{suffix}", body)


RULE_BODY = RULE_DRAFT.model_dump(mode="json")
ASK_BODY = {
    "subject_kind": "lead.outreach",
    "subject_id": "lead-1",
    "action_type": "email.send",
    "summary": "First e-mail to a lead",
}


def _fresh_member(world: ApiWorld, api: ApiClient) -> Call:
    with api.db.owner() as conn:
        user = create_user(conn, world.a.id, "member")
    return Call(f"/api/members/{user.id}", {"role": "viewer"})


def _invitation(world: ApiWorld, api: ApiClient) -> Call:
    email = f"rbac-{uuid.uuid4().hex[:10]}@example.com"
    return Call("/api/members/invitations", {"email": email, "role": "viewer"})


def _member_session(world: ApiWorld, api: ApiClient) -> str:
    """A session of tenant A's member (other callers, even A's admin, get 404 on it)."""
    opened = api.http.post(
        "/api/chat/sessions", json={}, headers=api.headers_for(world.a.user("member"))
    )
    assert opened.status_code == 201, opened.text
    return str(opened.json()["id"])


def _member_answer(world: ApiWorld, api: ApiClient) -> tuple[str, str, str]:
    session_id = _member_session(world, api)
    asked = api.http.post(
        f"/api/chat/sessions/{session_id}/messages",
        json={"content": "Qual é o prazo?"},
        headers=api.headers_for(world.a.user("member")),
    )
    assert asked.status_code == 201, asked.text
    body = asked.json()
    return session_id, str(body["question"]["id"]), str(body["answer"]["id"])


def _a_document(world: ApiWorld, api: ApiClient) -> Call:
    unique = uuid.uuid4().hex  # the callers of a route each read a document of their own
    with OwnerUnitOfWork(api.db, world.a.id) as uow:
        document_id = uow.knowledge.create_document(
            DocumentDraft(
                tenant_id=world.a.id,
                title=f"Manual {unique}",
                source=f"rbac://manual/{unique}",
                file_sha256=hashlib.sha256(unique.encode()).hexdigest(),
            )
        )
        uow.commit()
    return Call(f"/api/chat/documents/{document_id}")


def _resume(world: ApiWorld, api: ApiClient) -> Call:
    session_id, question_id, _ = _member_answer(world, api)
    return Call(f"/api/chat/sessions/{session_id}/messages/{question_id}/resume")


def _feedback(world: ApiWorld, api: ApiClient) -> Call:
    session_id, _, answer_id = _member_answer(world, api)
    return Call(f"/api/chat/sessions/{session_id}/messages/{answer_id}/feedback", {"rating": 5})


def _signed_webhook(world: ApiWorld, api: ApiClient) -> Call:
    event = stripe_event("invoice.paid", subscription="sub_unknown", customer="cus_unknown")
    delivery = stripe_delivery(DEV_WEBHOOK_SECRETS["stripe"], event)
    return Call(delivery.path, raw=delivery.body, headers=delivery.headers)


WRITE_CREATES = _status(401, 403, 201, 201, 403)


def _a_lead(world: ApiWorld, api: ApiClient) -> str:
    with api.db.owner() as conn:
        return str(create_lead(conn, world.a))


def _a_conflict(world: ApiWorld, api: ApiClient) -> Call:
    with api.db.owner() as conn:
        conflict_id = create_conflict(conn, world.a, create_lead(conn, world.a))
    return Call(f"/api/leads/conflicts/{conflict_id}/resolve", {"resolution": "keep_theirs"})


def _a_subject_request(world: ApiWorld, api: ApiClient) -> Call:
    with api.db.owner() as conn:
        request_id = create_subject_request(conn, world.a, create_lead(conn, world.a))
    return Call(f"/api/leads/dsr/{request_id}")


def _push(world: ApiWorld, api: ApiClient) -> Call:
    mutation = {
        "client_mutation_id": "m-1",
        "op": "create",
        "id": str(uuid.uuid4()),
        "fields": {"full_name": "Offline Lead"},
    }
    return Call("/api/leads/sync", {"device_id": "phone-1", "mutations": [mutation]})


IF_MATCH_1 = {"If-Match": '"1"'}


def _a_campaign(world: ApiWorld, api: ApiClient) -> str:
    with api.db.owner() as conn:
        return str(create_campaign(conn, world.a))


def _a_meeting(world: ApiWorld, api: ApiClient, step: str, body: Any = None) -> Call:
    with api.db.owner() as conn:
        meeting_id = create_meeting(conn, world.a, create_lead(conn, world.a))
    return Call(f"/api/leads/meetings/{meeting_id}{step}", body, headers=IF_MATCH_1)


PIPELINE_CONTRACT: dict[str, tuple[Build, dict[str, int]]] = {
    "POST /api/leads/campaigns": (
        lambda w, a: Call(
            "/api/leads/campaigns", {"name": f"C {uuid.uuid4().hex[:8]}", "channel": "email"}
        ),
        WRITE_CREATES,
    ),
    "GET /api/leads/campaigns": (lambda w, a: Call("/api/leads/campaigns"), READ),
    "GET /api/leads/campaigns/{campaign_id}": (
        lambda w, a: Call(f"/api/leads/campaigns/{_a_campaign(w, a)}"),
        READ,
    ),
    "POST /api/leads/campaigns/{campaign_id}/status": (
        lambda w, a: Call(
            f"/api/leads/campaigns/{_a_campaign(w, a)}/status",
            {"status": "active"},
            headers=IF_MATCH_1,
        ),
        WRITE,
    ),
    "DELETE /api/leads/campaigns/{campaign_id}": (
        lambda w, a: Call(f"/api/leads/campaigns/{_a_campaign(w, a)}", headers=IF_MATCH_1),
        WRITE,
    ),
    "GET /api/leads/meetings/{meeting_id}": (lambda w, a: _a_meeting(w, a, ""), READ),
    "POST /api/leads/meetings/{meeting_id}/reschedule": (
        lambda w, a: _a_meeting(w, a, "/reschedule", {"scheduled_for": "2032-01-01T10:00:00Z"}),
        WRITE,
    ),
    "POST /api/leads/meetings/{meeting_id}/cancel": (
        lambda w, a: _a_meeting(w, a, "/cancel"),
        WRITE,
    ),
    "POST /api/leads/meetings/{meeting_id}/complete": (
        lambda w, a: _a_meeting(w, a, "/complete"),
        WRITE,
    ),
    "POST /api/leads/{lead_id}/interactions": (
        lambda w, a: Call(
            f"/api/leads/{_a_lead(w, a)}/interactions",
            {"channel": "phone", "direction": "outbound"},
        ),
        WRITE_CREATES,
    ),
    "GET /api/leads/{lead_id}/consents": (
        lambda w, a: Call(f"/api/leads/{_a_lead(w, a)}/consents"),
        READ,
    ),
    "GET /api/leads/{lead_id}/interactions": (
        lambda w, a: Call(f"/api/leads/{_a_lead(w, a)}/interactions"),
        READ,
    ),
    "POST /api/leads/{lead_id}/meetings": (
        lambda w, a: Call(
            f"/api/leads/{_a_lead(w, a)}/meetings", {"scheduled_for": "2032-02-02T10:00:00Z"}
        ),
        WRITE_CREATES,
    ),
}

LEADS_CONTRACT: dict[str, tuple[Build, dict[str, int]]] = {
    "GET /api/leads/changes": (lambda w, a: Call("/api/leads/changes"), READ),
    "POST /api/leads/sync": (_push, WRITE),
    "GET /api/leads/conflicts": (lambda w, a: Call("/api/leads/conflicts"), READ),
    "POST /api/leads/conflicts/{conflict_id}/resolve": (_a_conflict, WRITE),
    "POST /api/leads/dsr": (
        lambda w, a: Call("/api/leads/dsr", {"lead_id": _a_lead(w, a), "kind": "access"}),
        ADMIN_CREATES,
    ),
    "GET /api/leads/dsr": (lambda w, a: Call("/api/leads/dsr"), ADMIN),
    "GET /api/leads/dsr/{request_id}": (_a_subject_request, ADMIN),
    "GET /api/leads/processing-record": (lambda w, a: Call("/api/leads/processing-record"), ADMIN),
    "GET /api/leads/metrics": (lambda w, a: Call("/api/leads/metrics"), READ),
    "POST /api/leads": (lambda w, a: Call("/api/leads", {"full_name": "Nova"}), WRITE_CREATES),
    "GET /api/leads": (lambda w, a: Call("/api/leads"), READ),
    "GET /api/leads/{lead_id}": (lambda w, a: Call(f"/api/leads/{_a_lead(w, a)}"), READ),
    "PATCH /api/leads/{lead_id}": (
        lambda w, a: Call(f"/api/leads/{_a_lead(w, a)}", {"score": 3}, headers=IF_MATCH_1),
        WRITE,
    ),
    "DELETE /api/leads/{lead_id}": (
        lambda w, a: Call(f"/api/leads/{_a_lead(w, a)}", headers=IF_MATCH_1),
        WRITE,
    ),
    "POST /api/leads/{lead_id}/consents": (
        lambda w, a: Call(
            f"/api/leads/{_a_lead(w, a)}/consents", {"action": "withdrawn", "channel": "email"}
        ),
        WRITE_CREATES,
    ),
}


def _a_form(world: ApiWorld, api: ApiClient) -> str:
    with api.db.owner() as conn:
        row = conn.execute(
            """
            INSERT INTO nigredo_leads.lead_forms
                (tenant_id, name, fields, consent_text, consent_text_version, purposes)
            VALUES (%s, %s, ARRAY['full_name', 'email'], 'Aceito o contato.', 'v1',
                    ARRAY['prospecting'])
            RETURNING id
            """,
            (world.a.id, f"Contato {uuid.uuid4()}"),
        ).fetchone()
    assert row is not None
    return str(row["id"])


def _an_import(world: ApiWorld, api: ApiClient) -> str:
    with api.db.owner() as conn:
        row = conn.execute(
            "INSERT INTO nigredo_leads.lead_imports (tenant_id, object_key) "
            "VALUES (%s, %s) RETURNING id",
            (world.a.id, f"imports/{world.a.id}/{uuid.uuid4()}.csv"),
        ).fetchone()
    assert row is not None
    return str(row["id"])


def _outreach(world: ApiWorld, api: ApiClient) -> Call:
    # a lead outreach may reach: an e-mail, a legitimate interest in prospecting
    email = f"lead-{uuid.uuid4().hex[:12]}@example.com"
    with api.db.owner() as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, false)", (str(world.a.id),))
        row = conn.execute(
            """
            INSERT INTO nigredo_leads.leads
                (tenant_id, full_name, email, email_normalized, legal_basis)
            VALUES (%s, 'Lead Alcançável', %s, %s, 'legitimate_interest') RETURNING id
            """,
            (world.a.id, email, email),
        ).fetchone()
    assert row is not None
    return Call(
        f"/api/leads/{row['id']}/outreach",
        {"subject": "Olá", "body": "Podemos conversar?", "purpose": "prospecting"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )


INTAKE_CONTRACT: dict[str, tuple[Build, dict[str, int]]] = {
    "POST /api/leads/forms": (
        lambda w, a: Call(
            "/api/leads/forms",
            {
                "name": f"Contato {uuid.uuid4()}",
                "fields": ["full_name", "email"],
                "consent_text": "Aceito o contato.",
                "consent_text_version": "v1",
                "purposes": ["prospecting"],
            },
        ),
        ADMIN_CREATES,
    ),
    "GET /api/leads/forms/{form_id}": (
        lambda w, a: Call(f"/api/leads/forms/{_a_form(w, a)}"),
        READ,
    ),
    "POST /api/leads/forms/{form_id}/submissions": (
        lambda w, a: Call(
            f"/api/leads/forms/{_a_form(w, a)}/submissions",
            {
                "fields": {"full_name": "Pessoa Exemplo", "email": "pessoa@example.com"},
                "consent": True,
                "consent_text_version": "v1",
            },
        ),
        PUBLIC_CREATES,
    ),
    "POST /api/leads/imports": (lambda w, a: Call("/api/leads/imports", {}), WRITE_CREATES),
    "GET /api/leads/imports/{import_id}": (
        lambda w, a: Call(f"/api/leads/imports/{_an_import(w, a)}"),
        READ,
    ),
    "POST /api/leads/{lead_id}/outreach": (_outreach, WRITE),
}


CONTRACT: dict[str, tuple[Build, dict[str, int]]] = {
    "GET /health": (lambda w, a: Call("/health"), _status(200, 200, 200, 200, 200)),
    "GET /api/agents": (lambda w, a: Call("/api/agents"), READ),
    "GET /api/agents/active": (lambda w, a: Call("/api/agents/active"), READ),
    "GET /api/agents/{agent_id}": (lambda w, a: Call(f"/api/agents/{SALES_AGENT.id}"), READ),
    "POST /api/agents/{agent_id}/activate": (
        lambda w, a: Call(f"/api/agents/{SALES_AGENT.id}/activate"),
        ADMIN,
    ),
    "POST /api/agents/{agent_id}/deactivate": (
        lambda w, a: Call(f"/api/agents/{SALES_AGENT.id}/deactivate"),
        ADMIN,
    ),
    "GET /api/billing/subscription": (lambda w, a: Call("/api/billing/subscription"), READ),
    "POST /api/billing/subscribe": (_subscribe, ADMIN_CREATES),
    "POST /api/billing/change-plan": (
        lambda w, a: Call("/api/billing/change-plan", {"plan_id": str(find_plan("enterprise").id)}),
        ADMIN,
    ),
    "POST /api/billing/cancel": (lambda w, a: Call("/api/billing/cancel"), ADMIN),
    "GET /api/billing/payment-events": (lambda w, a: Call("/api/billing/payment-events"), ADMIN),
    "POST /api/billing/trials": (
        lambda w, a: Call("/api/billing/trials", {"subnucleo_id": str(MARKETING.id)}),
        ADMIN_CREATES,
    ),
    "GET /api/billing/trials": (lambda w, a: Call("/api/billing/trials"), READ),
    "GET /api/billing/trials/{trial_id}/usage": (_trial_usage, READ),
    "POST /api/billing/trials/{trial_id}/usage": (_trial_usage, WRITE),
    "POST /api/billing/commercial-requests": (
        lambda w, a: Call(
            "/api/billing/commercial-requests",
            {
                "company_name": "Empresa Exemplo",
                "contact_name": "Ana Exemplo",
                "email": "ana@example.com",
                "consent_given": True,
            },
        ),
        PUBLIC_CREATES,
    ),
    "POST /api/billing/webhooks/{provider}": (
        _signed_webhook,
        _status(200, 200, 200, 200, 200),
    ),
    "GET /api/plans": (lambda w, a: Call("/api/plans"), READ),
    "GET /api/activity": (lambda w, a: Call("/api/activity"), _status(401, 403, 200, 200, 403)),
    "GET /api/audit": (lambda w, a: Call("/api/audit"), ADMIN),
    "GET /api/audit/verify": (lambda w, a: Call("/api/audit/verify"), ADMIN),
    "GET /api/members": (lambda w, a: Call("/api/members"), READ),
    "POST /api/members/invitations": (_invitation, ADMIN_CREATES),
    "GET /api/members/{user_id}": (
        lambda w, a: Call(f"/api/members/{w.a.user('viewer').id}"),
        READ,
    ),
    "PATCH /api/members/{user_id}": (_fresh_member, ADMIN),
    "DELETE /api/members/{user_id}": (_fresh_member, ADMIN),
    "GET /api/plans/{plan_id}": (
        lambda w, a: Call(f"/api/plans/{find_plan('starter').id}"),
        READ,
    ),
    "GET /api/policies": (lambda w, a: Call("/api/policies"), MEMBER_READ),
    "POST /api/policies": (lambda w, a: Call("/api/policies", RULE_BODY), ADMIN_CREATES),
    "POST /api/policies/evaluate": (
        lambda w, a: Call("/api/policies/evaluate", {"kind": "chat.message", "text": "oi"}),
        MEMBER_READ,
    ),
    "GET /api/policies/settings": (lambda w, a: Call("/api/policies/settings"), MEMBER_READ),
    "PUT /api/policies/settings": (
        lambda w, a: Call("/api/policies/settings", {"effect": "allow", "required_approvals": 1}),
        ADMIN,
    ),
    "GET /api/policies/{rule_id}": (_rule, MEMBER_READ),
    "PUT /api/policies/{rule_id}": (lambda w, a: _rule(w, a, body=RULE_BODY), ADMIN),
    "POST /api/policies/{rule_id}/deactivate": (lambda w, a: _rule(w, a, "/deactivate"), ADMIN),
    "GET /api/approvals": (lambda w, a: Call("/api/approvals"), READ),
    # No rule holds the subject in this world: the gate allows it at once.
    "POST /api/approvals": (lambda w, a: Call("/api/approvals", ASK_BODY), WRITE),
    "GET /api/approvals/{approval_id}": (_approval, READ),
    "POST /api/approvals/{approval_id}/decisions": (
        lambda w, a: _approval(w, a, "/decisions", {"decision": "approved", "reason": "ok"}),
        ADMIN,
    ),
    # Only the requester (the member here) may cancel; the admin gets not_the_requester.
    "POST /api/approvals/{approval_id}/cancel": (
        lambda w, a: _approval(w, a, "/cancel"),
        _status(401, 403, 200, 403, 403),
    ),
    **LEADS_CONTRACT,
    **INTAKE_CONTRACT,
    **PIPELINE_CONTRACT,
    "POST /api/chat/sessions": (lambda w, a: Call("/api/chat/sessions", {}), CHAT_CREATES),
    "GET /api/chat/sessions": (lambda w, a: Call("/api/chat/sessions"), CHAT),
    # A session is its user's: tenant A's admin gets 404 on the member's session.
    "GET /api/chat/sessions/{session_id}": (
        lambda w, a: Call(f"/api/chat/sessions/{_member_session(w, a)}"),
        CHAT_OWN,
    ),
    "POST /api/chat/sessions/{session_id}/close": (
        lambda w, a: Call(f"/api/chat/sessions/{_member_session(w, a)}/close"),
        CHAT_OWN,
    ),
    "GET /api/chat/sessions/{session_id}/messages": (
        lambda w, a: Call(f"/api/chat/sessions/{_member_session(w, a)}/messages"),
        CHAT_OWN,
    ),
    "POST /api/chat/sessions/{session_id}/messages": (
        lambda w, a: Call(
            f"/api/chat/sessions/{_member_session(w, a)}/messages", {"content": "Olá"}
        ),
        _status(401, 403, 201, 404, 403),
    ),
    # an answered question is not pending: the member reaches the use case's 409
    "POST /api/chat/sessions/{session_id}/messages/{message_id}/resume": (
        _resume,
        _status(401, 403, 409, 404, 403),
    ),
    "POST /api/chat/sessions/{session_id}/messages/{message_id}/feedback": (_feedback, CHAT_OWN),
    "GET /api/chat/usage": (lambda w, a: Call("/api/chat/usage"), CHAT),
    "POST /api/chat/documents": (
        lambda w, a: Call("/api/chat/documents", {"title": "Manual", "filename": "manual.pdf"}),
        CHAT_CREATES,
    ),
    "GET /api/chat/documents": (lambda w, a: Call("/api/chat/documents"), READ),
    "GET /api/chat/documents/{document_id}": (_a_document, READ),
}


def _headers(api: ApiClient, world: ApiWorld, caller: str) -> dict[str, str]:
    if caller == "none":
        return {}
    if caller == "other_admin":
        return api.headers_for(world.b.user("admin"), tenant=world.a)
    return api.headers_for(world.a.user(caller))


def test_every_route_has_a_contract() -> None:
    missing = [route.route_key for route in ROUTES if route.route_key not in CONTRACT]
    stale = [key for key in CONTRACT if key not in {route.route_key for route in ROUTES}]

    assert missing == [], "routes without an RBAC contract entry"
    assert stale == [], "contract entries for routes that no longer exist"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.route_key)
def test_route_answers_each_caller_as_the_contract_says(
    api: ApiClient, world: ApiWorld, route: Route
) -> None:
    """Every caller in turn, on one database per route (a database per caller made this the
    slowest test of the suite); each call builds its own resources, and a refused call writes
    nothing, so the callers do not see each other's calls. Every mismatch is reported."""
    if route.route_key not in CONTRACT:
        pytest.fail(f"{route.route_key} has no RBAC contract entry")
    build, expected = CONTRACT[route.route_key]

    answered: dict[str, int] = {}
    problems: list[str] = []
    for caller in CALLERS:
        call = build(world, api)
        headers = {**_headers(api, world, caller), **call.headers}
        if call.raw is not None:
            response = api.http.request(route.method, call.path, content=call.raw, headers=headers)
        else:
            response = api.http.request(route.method, call.path, json=call.body, headers=headers)
        answered[caller] = response.status_code
        if response.status_code != expected[caller]:
            problems.append(f"{caller}: {response.status_code} {response.text[:300]}")
        elif response.status_code >= 400 and (
            response.headers["content-type"] != "application/json"
            or not response.json()["error"]["code"]
        ):
            problems.append(f"{caller}: {response.status_code} is not the platform's error body")

    assert problems == [], f"expected {expected}, answered {answered}"
