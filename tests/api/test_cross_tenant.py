"""Tenant A's admin using tenant B's ids, over HTTP through the local gateway: tenant-owned ids
are 404 (never B's data, never a 500) and leave B's rows untouched; catalog ids are shared by
every tenant, and acting on them changes only A's own state.

Every route whose path takes an id needs an entry here, or ``test_every_id_route_is_covered``
fails.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from lambdas.chat.models import DocumentDraft
from lambdas.shared.routes import ROUTES, Route
from scripts.devstack.seed_catalog import find_agent, find_plan, find_subnucleo
from tests.api.conftest import ApiClient, ApiWorld
from tests.support.chat import OwnerUnitOfWork
from tests.support.factories import create_trial
from tests.support.governance import RULE_DRAFT, create_approval, create_rule
from tests.support.leads_factories import (
    create_campaign,
    create_conflict,
    create_lead,
    create_meeting,
    create_subject_request,
)

_ID_PARAM = re.compile(r"\{[a-z_]+_id\}")
SALES_AGENT = find_agent("sdr-prospector")  # in both A's and (through a trial) B's reach


@dataclass(frozen=True)
class Case:
    path: str
    expected: int
    b_unchanged: Callable[[], None] = lambda: None
    body: Any = None
    code: str = "trial_not_found"  # the error code of a 404
    headers: dict[str, str] = field(default_factory=dict)


def _b_activation_status(api: ApiClient, world: ApiWorld) -> str:
    with api.db.owner() as conn:
        row = conn.execute(
            """
            SELECT status FROM alquimista_platform.agent_activations
            WHERE tenant_id = %s AND agent_id = %s
            """,
            (world.b.id, SALES_AGENT.id),
        ).fetchone()
    assert row is not None
    return str(row["status"])


def _b_activated_agent(api: ApiClient, world: ApiWorld, suffix: str) -> Case:
    # B (on Starter) activates the sales agent through a trial of it
    with api.db.owner() as conn:
        create_trial(conn, world.b, agent_id=SALES_AGENT.id)
    activated = api.http.post(
        f"/api/agents/{SALES_AGENT.id}/activate", headers=api.headers_for(world.b.user("admin"))
    )
    assert activated.status_code == 200

    def unchanged() -> None:
        assert _b_activation_status(api, world) == "active"

    return Case(f"/api/agents/{SALES_AGENT.id}{suffix}", 200, unchanged)


def _b_trial(api: ApiClient, world: ApiWorld) -> Case:
    with api.db.owner() as conn:
        trial_id = create_trial(conn, world.b, subnucleo_id=find_subnucleo("marketing").id)

    def unchanged() -> None:
        with api.db.owner() as conn:
            row = conn.execute(
                "SELECT usage_count FROM public.trials WHERE id = %s", (trial_id,)
            ).fetchone()
        assert row is not None
        assert row["usage_count"] == 0

    return Case(f"/api/billing/trials/{trial_id}/usage", 404, unchanged)


def _b_rule(api: ApiClient, world: ApiWorld, suffix: str = "", body: Any = None) -> Case:
    with api.db.owner() as conn:
        rule_id = create_rule(conn, world.b)

    def unchanged() -> None:
        with api.db.owner() as conn:
            row = conn.execute(
                "SELECT count(*) AS n FROM alquimista_platform.policy_rules WHERE rule_id = %s",
                (rule_id,),
            ).fetchone()
        assert row is not None
        assert row["n"] == 1

    return Case(f"/api/policies/{rule_id}{suffix}", 404, unchanged, body, "policy_rule_not_found")


def _b_approval(api: ApiClient, world: ApiWorld, suffix: str = "", body: Any = None) -> Case:
    with api.db.owner() as conn:
        approval_id = create_approval(conn, world.b, world.b.user("member"))

    def unchanged() -> None:
        with api.db.owner() as conn:
            row = conn.execute(
                """
                SELECT r.status, (SELECT count(*) FROM alquimista_platform.approval_decisions AS d
                                  WHERE d.approval_request_id = r.id) AS decisions
                FROM alquimista_platform.approval_requests AS r WHERE r.id = %s
                """,
                (approval_id,),
            ).fetchone()
        assert row is not None
        assert (row["status"], row["decisions"]) == ("pending", 0)

    return Case(f"/api/approvals/{approval_id}{suffix}", 404, unchanged, body, "approval_not_found")


def _b_lead_row(api: ApiClient, lead_id: uuid.UUID) -> dict[str, Any]:
    with api.db.owner() as conn:
        conn.execute("SET row_security = off")
        row = conn.execute(
            "SELECT full_name, version, deleted_at, consent_status FROM nigredo_leads.leads "
            "WHERE id = %s",
            (lead_id,),
        ).fetchone()
    assert row is not None
    return row


def _b_lead(api: ApiClient, world: ApiWorld, suffix: str, body: Any = None) -> Case:
    with api.db.owner() as conn:
        lead_id = create_lead(conn, world.b, full_name="B's lead")
    before = _b_lead_row(api, lead_id)

    def unchanged() -> None:
        assert _b_lead_row(api, lead_id) == before

    return Case(
        f"/api/leads/{lead_id}{suffix}",
        404,
        unchanged,
        code="lead_not_found",
        body=body,
        headers={"If-Match": '"1"'},
    )


def _b_conflict(api: ApiClient, world: ApiWorld) -> Case:
    with api.db.owner() as conn:
        conflict_id = create_conflict(conn, world.b, create_lead(conn, world.b))

    def unchanged() -> None:
        with api.db.owner() as conn:
            conn.execute("SET row_security = off")
            row = conn.execute(
                "SELECT status FROM nigredo_leads.sync_conflicts WHERE id = %s", (conflict_id,)
            ).fetchone()
        assert row is not None
        assert row["status"] == "open"

    return Case(
        f"/api/leads/conflicts/{conflict_id}/resolve",
        404,
        unchanged,
        code="conflict_not_found",
        body={"resolution": "keep_mine"},
    )


def _row(api: ApiClient, table: str, row_id: uuid.UUID) -> dict[str, Any]:
    with api.db.owner() as conn:
        conn.execute("SET row_security = off")
        row = conn.execute(
            f"SELECT status, version, deleted_at FROM nigredo_leads.{table} WHERE id = %s",
            (row_id,),
        ).fetchone()
    assert row is not None
    return row


def _b_campaign(api: ApiClient, world: ApiWorld, suffix: str, body: Any = None) -> Case:
    with api.db.owner() as conn:
        campaign_id = create_campaign(conn, world.b)
    before = _row(api, "campanhas", campaign_id)

    def unchanged() -> None:
        assert _row(api, "campanhas", campaign_id) == before

    return Case(
        f"/api/leads/campaigns/{campaign_id}{suffix}",
        404,
        unchanged,
        code="campaign_not_found",
        body=body,
        headers={"If-Match": '"1"'},
    )


def _b_meeting(api: ApiClient, world: ApiWorld, suffix: str, body: Any = None) -> Case:
    with api.db.owner() as conn:
        meeting_id = create_meeting(conn, world.b, create_lead(conn, world.b))
    before = _row(api, "agendamentos", meeting_id)

    def unchanged() -> None:
        assert _row(api, "agendamentos", meeting_id) == before

    return Case(
        f"/api/leads/meetings/{meeting_id}{suffix}",
        404,
        unchanged,
        code="meeting_not_found",
        body=body,
        headers={"If-Match": '"1"'},
    )


def _b_subject_request(api: ApiClient, world: ApiWorld) -> Case:
    with api.db.owner() as conn:
        request_id = create_subject_request(conn, world.b, create_lead(conn, world.b))
    return Case(f"/api/leads/dsr/{request_id}", 404, code="data_subject_request_not_found")


def _b_form(api: ApiClient, world: ApiWorld) -> uuid.UUID:
    with api.db.owner() as conn:
        row = conn.execute(
            """
            INSERT INTO nigredo_leads.lead_forms
                (tenant_id, name, fields, consent_text, consent_text_version, purposes)
            VALUES (%s, 'Contato B', ARRAY['full_name', 'email'], 'Aceito o contato.', 'v1',
                    ARRAY['prospecting'])
            RETURNING id
            """,
            (world.b.id,),
        ).fetchone()
    assert row is not None
    return uuid.UUID(str(row["id"]))


def _intake_rows(api: ApiClient, tenant_id: uuid.UUID) -> dict[str, int]:
    """How many leads, form submissions and consent events ``tenant_id`` holds."""
    with api.db.owner() as conn:
        conn.execute("SET row_security = off")
        row = conn.execute(
            """
            SELECT (SELECT count(*) FROM nigredo_leads.leads WHERE tenant_id = %(t)s) AS leads,
                   (SELECT count(*) FROM nigredo_leads.form_submissions
                    WHERE tenant_id = %(t)s) AS submissions,
                   (SELECT count(*) FROM nigredo_leads.consent_events
                    WHERE tenant_id = %(t)s) AS consents
            """,
            {"t": tenant_id},
        ).fetchone()
    assert row is not None
    return dict(row)


def _b_form_submission(api: ApiClient, world: ApiWorld) -> Case:
    """The form is public: a's token is not read, and the submission lands in b (the form's
    tenant) only, never in the caller's tenant."""
    form_id = _b_form(api, world)
    a_before, b_before = _intake_rows(api, world.a.id), _intake_rows(api, world.b.id)

    def only_b_gained_the_lead() -> None:
        assert _intake_rows(api, world.a.id) == a_before
        assert _intake_rows(api, world.b.id) == {
            name: count + 1 for name, count in b_before.items()
        }
        with api.db.owner() as conn:
            conn.execute("SET row_security = off")
            row = conn.execute(
                """
                SELECT f.tenant_id AS submission_tenant, l.tenant_id AS lead_tenant
                FROM nigredo_leads.form_submissions AS f
                JOIN nigredo_leads.leads AS l ON l.id = f.lead_id
                WHERE f.form_id = %s
                """,
                (form_id,),
            ).fetchone()
        assert row == {"submission_tenant": world.b.id, "lead_tenant": world.b.id}

    return Case(
        f"/api/leads/forms/{form_id}/submissions",
        201,
        only_b_gained_the_lead,
        body={
            "fields": {"full_name": "Pessoa Exemplo", "email": "pessoa@example.com"},
            "consent": True,
            "consent_text_version": "v1",
        },
    )


def _b_import(api: ApiClient, world: ApiWorld) -> Case:
    with api.db.owner() as conn:
        row = conn.execute(
            "INSERT INTO nigredo_leads.lead_imports (tenant_id, object_key) "
            "VALUES (%s, 'imports/b/file.csv') RETURNING id",
            (world.b.id,),
        ).fetchone()
    assert row is not None
    return Case(f"/api/leads/imports/{row['id']}", 404, code="import_not_found")


def _b_outreach(api: ApiClient, world: ApiWorld) -> Case:
    case = _b_lead(
        api,
        world,
        "/outreach",
        {"subject": "Olá", "body": "Podemos conversar?", "purpose": "prospecting"},
    )
    return replace(case, headers={"Idempotency-Key": "cross-tenant-outreach"})


def _b_member(api: ApiClient, world: ApiWorld, body: Any = None) -> Case:
    member = world.b.user("member")

    def unchanged() -> None:
        listed = api.http.get(
            f"/api/members/{member.id}", headers=api.headers_for(world.b.user("admin"))
        )
        assert listed.status_code == 200
        assert listed.json()["role"] == "member"

    return Case(f"/api/members/{member.id}", 404, unchanged, body, "member_not_found")


def _b_chat(api: ApiClient, world: ApiWorld) -> tuple[str, str, str]:
    """Tenant B's member asks a question; B's session, question and answer ids."""
    headers = api.headers_for(world.b.user("member"))
    session_id = api.http.post("/api/chat/sessions", json={}, headers=headers).json()["id"]
    asked = api.http.post(
        f"/api/chat/sessions/{session_id}/messages", json={"content": "Olá"}, headers=headers
    )
    assert asked.status_code == 201, asked.text
    return session_id, asked.json()["question"]["id"], asked.json()["answer"]["id"]


def _b_messages(api: ApiClient, world: ApiWorld) -> int:
    with api.db.owner() as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM chat.messages WHERE tenant_id = %s", (world.b.id,)
        ).fetchone()
    assert row is not None
    return int(row["n"])


def _b_session_case(suffix: str, body: Any = None) -> Callable[[ApiClient, ApiWorld], Case]:
    def build(api: ApiClient, world: ApiWorld) -> Case:
        session_id, question_id, answer_id = _b_chat(api, world)
        before = _b_messages(api, world)
        path = f"/api/chat/sessions/{session_id}" + suffix.format(
            question=question_id, answer=answer_id
        )

        def unchanged() -> None:
            assert _b_messages(api, world) == before
            with api.db.owner() as conn:
                row = conn.execute(
                    "SELECT status FROM chat.sessions WHERE id = %s", (session_id,)
                ).fetchone()
                rated = conn.execute("SELECT count(*) AS n FROM chat.message_feedback").fetchone()
            assert row is not None
            assert row["status"] == "open"
            assert rated is not None
            assert rated["n"] == 0

        code = "chat_answer_not_found" if "feedback" in suffix else "chat_session_not_found"
        if "resume" in suffix:
            code = "chat_message_not_found"
        return Case(path, 404, unchanged, code=code, body=body)

    return build


def _b_document(api: ApiClient, world: ApiWorld) -> Case:
    with OwnerUnitOfWork(api.db, world.b.id) as uow:
        document_id = uow.knowledge.create_document(
            DocumentDraft(
                tenant_id=world.b.id, title="Segredos", source="b://doc", file_sha256="b" * 64
            )
        )
        uow.commit()
    return Case(f"/api/chat/documents/{document_id}", 404, code="document_not_found")


CASES: dict[str, Callable[[ApiClient, ApiWorld], Case]] = {
    # Catalog ids are global: A sees the catalog entry, never B's activation state.
    "GET /api/agents/{agent_id}": lambda api, w: _b_activated_agent(api, w, ""),
    "POST /api/agents/{agent_id}/activate": lambda api, w: _b_activated_agent(api, w, "/activate"),
    "POST /api/agents/{agent_id}/deactivate": lambda api, w: _b_activated_agent(
        api, w, "/deactivate"
    ),
    "GET /api/plans/{plan_id}": lambda api, w: Case(f"/api/plans/{find_plan('starter').id}", 200),
    # Tenant-owned ids: B's are invisible to A.
    "GET /api/billing/trials/{trial_id}/usage": _b_trial,
    "POST /api/billing/trials/{trial_id}/usage": _b_trial,
    "GET /api/policies/{rule_id}": _b_rule,
    "PUT /api/policies/{rule_id}": lambda api, w: _b_rule(
        api, w, body=RULE_DRAFT.model_dump(mode="json")
    ),
    "POST /api/policies/{rule_id}/deactivate": lambda api, w: _b_rule(api, w, "/deactivate"),
    "GET /api/approvals/{approval_id}": _b_approval,
    "POST /api/approvals/{approval_id}/decisions": lambda api, w: _b_approval(
        api, w, "/decisions", {"decision": "approved", "reason": "ok"}
    ),
    "POST /api/approvals/{approval_id}/cancel": lambda api, w: _b_approval(api, w, "/cancel"),
    "GET /api/leads/{lead_id}": lambda api, w: _b_lead(api, w, ""),
    "PATCH /api/leads/{lead_id}": lambda api, w: _b_lead(api, w, "", {"full_name": "Taken"}),
    "DELETE /api/leads/{lead_id}": lambda api, w: _b_lead(api, w, ""),
    "POST /api/leads/{lead_id}/consents": lambda api, w: _b_lead(
        api, w, "/consents", {"action": "withdrawn", "channel": "email"}
    ),
    "GET /api/leads/{lead_id}/consents": lambda api, w: _b_lead(api, w, "/consents"),
    "POST /api/leads/conflicts/{conflict_id}/resolve": _b_conflict,
    "GET /api/leads/dsr/{request_id}": _b_subject_request,
    "GET /api/leads/campaigns/{campaign_id}": lambda api, w: _b_campaign(api, w, ""),
    "POST /api/leads/campaigns/{campaign_id}/status": lambda api, w: _b_campaign(
        api, w, "/status", {"status": "archived"}
    ),
    "DELETE /api/leads/campaigns/{campaign_id}": lambda api, w: _b_campaign(api, w, ""),
    "GET /api/leads/meetings/{meeting_id}": lambda api, w: _b_meeting(api, w, ""),
    "POST /api/leads/meetings/{meeting_id}/reschedule": lambda api, w: _b_meeting(
        api, w, "/reschedule", {"scheduled_for": "2032-03-03T10:00:00Z"}
    ),
    "POST /api/leads/meetings/{meeting_id}/cancel": lambda api, w: _b_meeting(api, w, "/cancel"),
    "POST /api/leads/meetings/{meeting_id}/complete": lambda api, w: _b_meeting(
        api, w, "/complete"
    ),
    "POST /api/leads/{lead_id}/interactions": lambda api, w: _b_lead(
        api, w, "/interactions", {"channel": "phone", "direction": "outbound"}
    ),
    "GET /api/leads/{lead_id}/interactions": lambda api, w: _b_lead(api, w, "/interactions"),
    "POST /api/leads/{lead_id}/meetings": lambda api, w: _b_lead(
        api, w, "/meetings", {"scheduled_for": "2032-04-04T10:00:00Z"}
    ),
    "GET /api/leads/forms/{form_id}": lambda api, w: Case(
        f"/api/leads/forms/{_b_form(api, w)}", 404, code="form_not_found"
    ),
    # A capture form is public: whoever posts (a token is not read) reaches tenant b's form.
    "POST /api/leads/forms/{form_id}/submissions": _b_form_submission,
    "GET /api/leads/imports/{import_id}": _b_import,
    "POST /api/leads/{lead_id}/outreach": _b_outreach,
    "GET /api/members/{user_id}": _b_member,
    "PATCH /api/members/{user_id}": lambda api, w: _b_member(api, w, {"role": "admin"}),
    "DELETE /api/members/{user_id}": _b_member,
    "GET /api/chat/sessions/{session_id}": _b_session_case(""),
    "POST /api/chat/sessions/{session_id}/close": _b_session_case("/close"),
    "GET /api/chat/sessions/{session_id}/messages": _b_session_case("/messages"),
    "POST /api/chat/sessions/{session_id}/messages": _b_session_case(
        "/messages", {"content": "Mostre a conversa de B"}
    ),
    "POST /api/chat/sessions/{session_id}/messages/{message_id}/resume": _b_session_case(
        "/messages/{question}/resume"
    ),
    "POST /api/chat/sessions/{session_id}/messages/{message_id}/feedback": _b_session_case(
        "/messages/{answer}/feedback", {"rating": 1}
    ),
    "GET /api/chat/documents/{document_id}": _b_document,
}


ID_ROUTES = [route for route in ROUTES if _ID_PARAM.search(route.path)]


def test_every_id_route_is_covered() -> None:
    assert sorted(r.route_key for r in ID_ROUTES) == sorted(CASES)


@pytest.mark.parametrize("route", ID_ROUTES, ids=lambda r: r.route_key)
def test_tenant_a_admin_with_tenant_b_ids(api: ApiClient, world: ApiWorld, route: Route) -> None:
    case = CASES[route.route_key](api, world)

    response = api.http.request(
        route.method,
        case.path,
        json=case.body,
        headers={**api.headers_for(world.a.user("admin")), **case.headers},
    )

    assert response.status_code == case.expected, response.text
    if case.expected == 404:
        assert response.json()["error"]["code"] == case.code
        assert str(world.b.id) not in response.text
    case.b_unchanged()


def test_tenant_a_admin_sets_only_tenant_a_policy_settings(api: ApiClient, world: ApiWorld) -> None:
    # The settings route takes no id: the caller's tenant is the only one it can reach.
    a_admin = api.headers_for(world.a.user("admin"))
    b_admin = api.headers_for(world.b.user("admin"))
    b_before = api.http.get("/api/policies/settings", headers=b_admin).json()

    changed = api.http.put(
        "/api/policies/settings",
        json={"effect": "require_approval", "required_approvals": 3},
        headers=a_admin,
    )

    assert changed.status_code == 200, changed.text
    assert api.http.get("/api/policies/settings", headers=a_admin).json() == {
        "effect": "require_approval",
        "required_approvals": 3,
    }
    assert api.http.get("/api/policies/settings", headers=b_admin).json() == b_before
    with api.db.owner() as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM alquimista_platform.policy_settings WHERE tenant_id = %s",
            (world.b.id,),
        ).fetchone()
    assert row is not None
    assert row["n"] == 0
