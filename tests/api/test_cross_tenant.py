"""Tenant A's admin using tenant B's ids, over HTTP through the local gateway: tenant-owned ids
are 404 (never B's data, never a 500) and leave B's rows untouched; catalog ids are shared by
every tenant, and acting on them changes only A's own state.

Every route whose path takes an id needs an entry here, or ``test_every_id_route_is_covered``
fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from lambdas.chat.models import DocumentDraft
from lambdas.shared.routes import ROUTES, Route
from scripts.devstack.seed_catalog import find_agent, find_plan, find_subnucleo
from tests.api.conftest import ApiClient, ApiWorld
from tests.support.chat import OwnerUnitOfWork
from tests.support.factories import create_trial

_ID_PARAM = re.compile(r"\{[a-z_]+_id\}")
SALES_AGENT = find_agent("sdr-prospector")  # in both A's and (through a trial) B's reach


@dataclass(frozen=True)
class Case:
    path: str
    expected: int
    b_unchanged: Callable[[], None] = lambda: None
    code: str = "trial_not_found"
    body: Any = None


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
        route.method, case.path, json=case.body, headers=api.headers_for(world.a.user("admin"))
    )

    assert response.status_code == case.expected, response.text
    if case.expected == 404:
        assert response.json()["error"]["code"] == case.code
        assert str(world.b.id) not in response.text
    case.b_unchanged()
