"""The chat route group through its handler, on the real database, moto and the offline
provider: sessions, a question answered with citations and paid from the quota, the gate
(blocked: zero provider calls; pending: answered after approval), quota and provider failures,
feedback, usage and documents uploaded through a presigned upload and ingested."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import boto3
import psycopg
import pytest

from lambdas.approvals import service as approvals
from lambdas.approvals.repository import ApprovalsUnitOfWork
from lambdas.chat import ingest_handler, service
from lambdas.chat.llm import LlmGateway
from lambdas.chat.models import ChatTurn, Completion
from lambdas.chat.quota_repository import TokenQuotaRepository
from lambdas.chat.unit_of_work import ChatUnitOfWork, QuestionEmbedder
from lambdas.policies import service as policies
from lambdas.policies.models import RuleDraft
from lambdas.policies.repository import PoliciesUnitOfWork
from lambdas.shared.auth import Principal
from lambdas.shared.constants import resource_names
from lambdas.shared.runtime import WRITERS
from lambdas.shared.scope import RequestScope
from scripts.devstack.aws_resources import LocalResources
from scripts.devstack.llm_server import RunningLlmServer, start_llm_server
from scripts.devstack.stack import reset_lambda_caches
from tests.integration.conftest import World
from tests.support.chat import portuguese_pdf, runtime_database, scripted_provider
from tests.support.database import TestDatabase
from tests.support.events import lambda_context
from tests.support.factories import TestTenant, TestUser
from tests.support.handlers import HandlerResult, call

Conn = psycopg.Connection[dict[str, Any]]
REFUND = "O reembolso é concedido em até trinta dias após a compra do produto."


def _use_provider(monkeypatch: pytest.MonkeyPatch, base_url: str, api_key: str) -> None:
    monkeypatch.setenv("LLM_BASE_URL", base_url)
    monkeypatch.setenv("LLM_API_KEY", api_key)
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("LLM_TIMEOUT_S", "5")
    reset_lambda_caches()
    ingest_handler._gateway.cache_clear()


@pytest.fixture
def llm(lambda_env: LocalResources, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningLlmServer]:
    server = start_llm_server()
    _use_provider(monkeypatch, server.base_url, server.api_key)
    yield server
    ingest_handler._gateway.cache_clear()
    server.stop()


def _open_session(user: TestUser, title: str = "Dúvidas") -> str:
    opened = call("POST", "/api/chat/sessions", user=user, body={"title": title})
    assert opened.status == 201, opened.body
    return str(opened.body["id"])


def _ask(user: TestUser, session_id: str, content: str) -> HandlerResult:
    return call(
        "POST", f"/api/chat/sessions/{session_id}/messages", user=user, body={"content": content}
    )


def _upload_and_ingest(tenant: TestTenant, title: str, paragraphs: list[str]) -> str:
    """What a client and the S3 event do: ask for an upload, put the file, ingest it."""
    issued = call(
        "POST",
        "/api/chat/documents",
        user=tenant.user("member"),
        body={"title": title, "filename": "politica.pdf"},
    )
    assert issued.status == 201, issued.body
    key = issued.body["key"]
    bucket = resource_names("dev").documents_bucket
    boto3.client("s3").put_object(
        Bucket=bucket,
        Key=key,
        Body=portuguese_pdf(paragraphs),
        Metadata={"title": issued.body["upload"]["fields"]["x-amz-meta-title"]},
    )
    event = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Post",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}},
            }
        ]
    }
    result = ingest_handler.lambda_handler(event, lambda_context("chat-ingest"))
    assert result["documents"][0]["status"] == "ready", result
    return str(issued.body["document_id"])


def _uow_factory(cls: Any, db: TestDatabase, tenant_id: uuid.UUID) -> Callable[[], Any]:
    database = runtime_database(db)
    return lambda: cls(RequestScope(lambda: database, writers=WRITERS), tenant_id)


def _rule(db: TestDatabase, tenant: TestTenant, draft: RuleDraft) -> None:
    policies.create_rule(
        _uow_factory(PoliciesUnitOfWork, db, tenant.id), draft, actor_id=tenant.user("admin").id
    )


def test_a_session_opens_lists_reads_and_closes(world: World, llm: RunningLlmServer) -> None:
    member = world.a.user("member")
    session_id = _open_session(member, "Reembolsos")

    listed = call("GET", "/api/chat/sessions", user=member)
    read = call("GET", f"/api/chat/sessions/{session_id}", user=member)
    closed = call("POST", f"/api/chat/sessions/{session_id}/close", user=member)
    refused = _ask(member, session_id, "Ainda está aberta?")

    assert [s["id"] for s in listed.body["items"]] == [session_id]
    assert (read.status, read.body["session"]["title"], read.body["messages"]) == (
        200,
        "Reembolsos",
        [],
    )
    assert (closed.status, closed.body["status"]) == (200, "closed")
    assert (refused.status, refused.body["error"]["code"]) == (409, "chat_session_closed")
    assert llm.stats.total == 0


def test_a_message_of_only_whitespace_is_refused_before_anything_runs(
    world: World, llm: RunningLlmServer, owner_conn: Conn
) -> None:
    member = world.a.user("member")
    session_id = _open_session(member)

    blank = _ask(member, session_id, " \n\t ")

    assert (blank.status, blank.body["error"]["code"]) == (422, "validation_error")
    assert "only whitespace" in str(blank.body["error"])
    assert llm.stats.total == 0  # no embedding, no completion, no tokens reserved
    stored = owner_conn.execute("SELECT count(*) AS n FROM chat.messages").fetchone()
    assert stored == {"n": 0}


def test_another_member_cannot_read_a_session(world: World, llm: RunningLlmServer) -> None:
    session_id = _open_session(world.a.user("member"))

    read = call("GET", f"/api/chat/sessions/{session_id}", user=world.a.user("admin"))
    asked = _ask(world.a.user("admin"), session_id, "Olá")

    assert (read.status, read.body["error"]["code"]) == (404, "chat_session_not_found")
    assert asked.status == 404


def test_a_question_is_answered_citing_the_tenants_document_and_paid_from_the_quota(
    world: World, llm: RunningLlmServer, owner_conn: Conn
) -> None:
    # Given acme's refund policy in its knowledge base
    document_id = _upload_and_ingest(world.a, "Política de reembolso", [REFUND])
    member = world.a.user("member")
    session_id = _open_session(member)

    # When a member asks about it
    asked = _ask(member, session_id, "Qual é o prazo de reembolso da compra?")

    # Then the answer quotes the passage and cites its chunk, and the tokens were paid
    assert asked.status == 201, asked.body
    answer = asked.body["answer"]
    assert asked.body["verdict"]["outcome"] == "allow"
    assert asked.body["question"]["status"] == "answered"
    assert "trinta dias" in answer["content"]
    assert [c["document_id"] for c in answer["citations"]] == [document_id]
    assert answer["prompt_tokens"] > 0
    assert answer["completion_tokens"] > 0
    assert llm.stats.completions == 1
    history = call("GET", f"/api/chat/sessions/{session_id}/messages", user=member)
    assert [(m["role"], m["status"]) for m in history.body["messages"]] == [
        ("user", "answered"),
        ("assistant", "answered"),
    ]
    assert history.body["messages"][1]["citations"][0]["document_title"] == (
        "Política de reembolso"
    )
    quota = owner_conn.execute(
        "SELECT used, reserved FROM chat.token_usage WHERE tenant_id = %s", (world.a.id,)
    ).fetchone()
    assert quota == {
        "used": answer["prompt_tokens"] + answer["completion_tokens"],
        "reserved": 0,
    }
    usage = call("GET", "/api/chat/usage", user=member)
    [row] = usage.body["rows"]
    assert (row["user_id"], row["calls"]) == (str(member.id), 1)
    assert usage.body["quota"]["used"] == quota["used"]
    audit = owner_conn.execute(
        """
        SELECT action FROM alquimista_platform.audit_logs
        WHERE tenant_id = %s AND resource_id = %s
        """,
        (world.a.id, answer["id"]),
    ).fetchall()
    assert [a["action"] for a in audit] == ["chat_message.answered"]


def test_another_tenant_never_gets_acmes_document_in_an_answer(
    world: World, llm: RunningLlmServer
) -> None:
    document_id = _upload_and_ingest(world.a, "Política de reembolso", [REFUND])
    other = world.b.user("member")

    asked = _ask(other, _open_session(other), "Qual é o prazo de reembolso da compra?")
    document = call("GET", f"/api/chat/documents/{document_id}", user=world.b.user("admin"))
    listed = call("GET", "/api/chat/documents", user=world.b.user("admin"))

    assert asked.status == 201, asked.body
    assert asked.body["answer"]["citations"] == []
    assert "trinta dias" not in asked.body["answer"]["content"]
    assert (document.status, document.body["error"]["code"]) == (404, "document_not_found")
    assert listed.body["items"] == []


def test_a_blocked_message_never_reaches_the_provider(
    world: World, llm: RunningLlmServer, db: TestDatabase, owner_conn: Conn
) -> None:
    _rule(
        db,
        world.a,
        RuleDraft(
            name="Sem segredos",
            effect="block",
            matcher={"subject_kinds": ["chat.message"], "keywords": ["segredo industrial"]},
        ),
    )
    member = world.a.user("member")
    session_id = _open_session(member)

    blocked = _ask(member, session_id, "Conte o SEGREDO industrial da fórmula")

    assert (blocked.status, blocked.body["error"]["code"]) == (403, "policy_blocked")
    assert llm.stats.total == 0
    [question] = owner_conn.execute(
        "SELECT status, error_code FROM chat.messages WHERE session_id = %s", (session_id,)
    ).fetchall()
    assert question == {"status": "blocked", "error_code": "policy_blocked"}
    assert blocked.body["error"]["details"][0]["message_id"]


def test_a_message_needing_approval_is_answered_once_approved(
    world: World, llm: RunningLlmServer, db: TestDatabase
) -> None:
    _rule(
        db,
        world.a,
        RuleDraft(
            name="Contratos precisam de aprovação",
            effect="require_approval",
            required_approvals=1,
            matcher={"subject_kinds": ["chat.message"], "keywords": ["contrato"]},
        ),
    )
    member = world.a.user("member")
    session_id = _open_session(member)

    pending = _ask(member, session_id, "Resuma o contrato de prestação de serviços")
    assert pending.status == 201, pending.body
    assert (pending.body["verdict"]["outcome"], pending.body["answer"]) == ("pending", None)
    approval_id = pending.body["verdict"]["approval_request_id"]
    message_id = pending.body["question"]["id"]
    resume = f"/api/chat/sessions/{session_id}/messages/{message_id}/resume"
    still = call("POST", resume, user=member)
    assert (still.status, still.body["verdict"]["outcome"]) == (200, "pending")
    assert still.body["verdict"]["approval_request_id"] == approval_id
    assert llm.stats.total == 0

    approvals.decide(
        _uow_factory(ApprovalsUnitOfWork, db, world.a.id),
        uuid.UUID(approval_id),
        decider=world.a.user("admin").id,
        decision="approved",
        reason="pode responder",
    )
    answered = call("POST", resume, user=member)
    again = call("POST", resume, user=member)

    assert answered.status == 200, answered.body
    assert answered.body["answer"]["reply_to"] == message_id
    assert answered.body["question"]["status"] == "answered"
    history = call("GET", f"/api/chat/sessions/{session_id}/messages", user=member)
    assert [(m["role"], m["status"]) for m in history.body["messages"]] == [
        ("user", "answered"),
        ("assistant", "answered"),
    ]
    assert llm.stats.completions == 1
    assert (again.status, again.body["error"]["code"]) == (409, "chat_message_not_pending")


def test_over_quota_is_429_and_reaches_no_provider(
    world: World, llm: RunningLlmServer, db: TestDatabase
) -> None:
    with db.owner() as conn:
        TokenQuotaRepository(conn, world.a.id).set_monthly_limit(100)
    member = world.a.user("member")

    refused = _ask(member, _open_session(member), "Qual é o prazo de reembolso?")

    assert (refused.status, refused.body["error"]["code"]) == (429, "token_quota_exceeded")
    assert 0 < int(refused.headers["Retry-After"]) <= 31 * 24 * 3600
    assert llm.stats.completions == 0


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [(500, 502, "llm_provider_error"), (429, 503, "llm_unavailable")],
)
def test_a_provider_failure_is_502_or_503_and_releases_the_tokens(
    world: World,
    lambda_env: LocalResources,
    monkeypatch: pytest.MonkeyPatch,
    owner_conn: Conn,
    status: int,
    expected: int,
    code: str,
) -> None:
    embedding = {"object": "list", "data": [{"index": 0, "embedding": [0.0] * 1535 + [1.0]}]}
    failure = {"error": {"message": "boom", "type": "server_error"}}
    with scripted_provider([(200, embedding, 0.0), (status, failure, 0.0)]) as (url, provider):
        _use_provider(monkeypatch, url, "k")
        member = world.a.user("member")
        failed = _ask(member, _open_session(member), "Qual é o prazo?")

    assert (failed.status, failed.body["error"]["code"]) == (expected, code)
    assert provider.requests == 2
    quota = owner_conn.execute(
        "SELECT used, reserved FROM chat.token_usage WHERE tenant_id = %s", (world.a.id,)
    ).fetchone()
    assert quota == {"used": 0, "reserved": 0}
    [question] = owner_conn.execute("SELECT status FROM chat.messages").fetchall()
    assert question["status"] == "failed"


def test_feedback_rates_an_answer_and_only_an_answer(world: World, llm: RunningLlmServer) -> None:
    member = world.a.user("member")
    session_id = _open_session(member)
    asked = _ask(member, session_id, "Qual é o prazo?")
    base = f"/api/chat/sessions/{session_id}/messages"

    rated = call(
        "POST",
        f"{base}/{asked.body['answer']['id']}/feedback",
        user=member,
        body={"rating": 4, "comment": "útil"},
    )
    on_question = call(
        "POST", f"{base}/{asked.body['question']['id']}/feedback", user=member, body={"rating": 4}
    )
    out_of_range = call(
        "POST", f"{base}/{asked.body['answer']['id']}/feedback", user=member, body={"rating": 9}
    )

    assert (rated.status, rated.body["rating"]) == (200, 4)
    assert (on_question.status, on_question.body["error"]["code"]) == (
        404,
        "chat_answer_not_found",
    )
    assert out_of_range.status == 422


def test_a_document_upload_is_presigned_and_its_status_visible(
    world: World, llm: RunningLlmServer
) -> None:
    admin = world.a.user("admin")
    unsupported = call(
        "POST", "/api/chat/documents", user=admin, body={"title": "x", "filename": "a.exe"}
    )
    document_id = _upload_and_ingest(world.a, "Manual do cliente", [REFUND])

    document = call("GET", f"/api/chat/documents/{document_id}", user=admin)
    listed = call("GET", "/api/chat/documents", user=admin)
    unknown = call("GET", f"/api/chat/documents/{uuid.uuid4()}", user=admin)

    assert (unsupported.status, unsupported.body["error"]["code"]) == (422, "validation_error")
    assert "unsupported file type '.exe'" in str(unsupported.body["error"])
    assert document.body["status"] == "ready"
    assert document.body["scope"] == "tenant"
    assert document.body["chunk_count"] == 1
    assert [d["id"] for d in listed.body["items"]] == [document_id]
    assert unknown.status == 404


def test_usage_refuses_an_inverted_range(world: World, llm: RunningLlmServer) -> None:
    refused = call(
        "GET",
        "/api/chat/usage",
        user=world.a.user("member"),
        query="since=2026-02-01&until=2026-01-01",
    )
    assert (refused.status, refused.body["error"]["code"]) == (422, "invalid_usage_range")


class _HeldLlm:
    """The real gateway, but the first completion waits until ``release`` is set: a resume
    caught between its reservation and its answer."""

    def __init__(self, gateway: LlmGateway) -> None:
        self._gateway = gateway
        self._calls = 0
        self._lock = threading.Lock()
        self.entered = threading.Event()
        self.release = threading.Event()

    def complete(self, turns: Sequence[ChatTurn], *, max_tokens: int) -> Completion:
        with self._lock:
            self._calls += 1
            first = self._calls == 1
        if first:
            self.entered.set()
            assert self.release.wait(timeout=30)
        return self._gateway.complete(turns, max_tokens=max_tokens)


def test_two_concurrent_resumes_answer_and_charge_once(
    world: World, llm: RunningLlmServer, db: TestDatabase, owner_conn: Conn
) -> None:
    # Given an approved question waiting to be resumed
    _rule(
        db,
        world.a,
        RuleDraft(
            name="Contratos precisam de aprovação",
            effect="require_approval",
            required_approvals=1,
            matcher={"subject_kinds": ["chat.message"], "keywords": ["contrato"]},
        ),
    )
    member = world.a.user("member")
    session_id = _open_session(member)
    pending = _ask(member, session_id, "Resuma o contrato de prestação de serviços")
    approvals.decide(
        _uow_factory(ApprovalsUnitOfWork, db, world.a.id),
        uuid.UUID(pending.body["verdict"]["approval_request_id"]),
        decider=world.a.user("admin").id,
        decision="approved",
        reason="pode responder",
    )
    message_id = uuid.UUID(pending.body["question"]["id"])
    gateway = LlmGateway(
        api_key=llm.api_key,
        base_url=llm.base_url,
        chat_model="offline-chat",
        embedding_model="offline-embedding",
        timeout_s=5,
        max_retries=0,
    )
    held = _HeldLlm(gateway)
    principal = Principal(
        user_id=member.id,
        sub=member.sub,
        email=member.email,
        tenant_id=world.a.id,
        role="member",
        permissions=frozenset(),
    )
    outcomes: dict[str, service.MessageOutcome | Exception] = {}

    def resume(name: str) -> None:
        database = runtime_database(db)  # each request its own connection, as two Lambdas

        def uow() -> ChatUnitOfWork:
            scope = RequestScope(lambda: database, writers=WRITERS)
            scope.principal = principal
            return ChatUnitOfWork(scope, world.a.id, default_monthly_tokens=100_000)

        try:
            outcomes[name] = service.resume_message(
                uow,
                retriever=QuestionEmbedder(gateway),
                llm=held,
                session_id=uuid.UUID(session_id),
                message_id=message_id,
                tenant_id=world.a.id,
                user_id=member.id,
                model=gateway.chat_model,
            )
        except Exception as error:  # the outcome under test
            outcomes[name] = error
        finally:
            database.close()

    # When a second resume arrives while the first waits for the model
    first = threading.Thread(target=resume, args=("first",))
    first.start()
    try:
        assert held.entered.wait(timeout=30)
        second = threading.Thread(target=resume, args=("second",))
        second.start()
        second.join(timeout=30)
    finally:
        held.release.set()
        first.join(timeout=30)
    gateway.close()

    # Then only the first reaches the provider, is charged and answers
    assert isinstance(outcomes["second"], service.MessageNotPending), outcomes["second"]
    answered = outcomes["first"]
    assert isinstance(answered, service.MessageOutcome), answered
    assert answered.answer is not None
    assert llm.stats.completions == 1
    answers = owner_conn.execute(
        "SELECT count(*) AS n FROM chat.messages WHERE reply_to = %s", (message_id,)
    ).fetchone()
    assert answers == {"n": 1}
    quota = owner_conn.execute(
        "SELECT used, reserved FROM chat.token_usage WHERE tenant_id = %s", (world.a.id,)
    ).fetchone()
    tokens = answered.answer.prompt_tokens + answered.answer.completion_tokens
    assert quota == {"used": tokens, "reserved": 0}
    calls = owner_conn.execute("SELECT count(*) AS n FROM chat.token_usage_log").fetchone()
    assert calls == {"n": 1}


def test_a_message_costs_eight_round_trips_and_three_commits(
    world: World, llm: RunningLlmServer, owner_conn: Conn
) -> None:
    # Given a session that already took a message (the connection and its statements warm)
    from lambdas.shared.runtime import get_runtime  # noqa: PLC0415
    from tests.support.round_trips import counting_round_trips  # noqa: PLC0415

    member = world.a.user("member")
    session_id = _open_session(member)
    assert _ask(member, session_id, "Qual é o prazo?").status == 201
    conn = get_runtime().database.connection()

    # When the next message is answered
    with counting_round_trips(conn) as trips:
        asked = _ask(member, session_id, "E a nota fiscal?")

    # Then: the caller's lookup with BEGIN, the gate's policy and evaluation, the question with
    # COMMIT; the search with BEGIN, the reservation with COMMIT; BEGIN, the settlement, answer,
    # audit row and event with COMMIT
    assert asked.status == 201, asked.body
    assert len(trips) == 8
    assert sum(1 for trip in trips.trips if "COMMIT" in trip) == 3
    searched = [trip for trip in trips.trips if any("search_chunks_v3" in s for s in trip)]
    assert len(searched) == 1
    assert searched[0][0] == "BEGIN"
    answer_id = asked.body["answer"]["id"]
    events = owner_conn.execute(
        """
        SELECT event_type, payload->>'question_id' AS question_id
        FROM alquimista_platform.domain_outbox WHERE aggregate_id = %s
        """,
        (answer_id,),
    ).fetchall()
    assert events == [
        {"event_type": "chat_message.answered", "question_id": asked.body["question"]["id"]}
    ]


@pytest.mark.parametrize("refusal", ["closed", "not_the_callers"])
def test_a_refused_session_keeps_nothing_the_gate_wrote(
    world: World, llm: RunningLlmServer, db: TestDatabase, owner_conn: Conn, refusal: str
) -> None:
    # Given a rule that files an approval request for the message (the gate writes the most)
    _rule(
        db,
        world.a,
        RuleDraft(
            name="Contratos precisam de aprovação",
            effect="require_approval",
            required_approvals=1,
            matcher={"subject_kinds": ["chat.message"], "keywords": ["contrato"]},
        ),
    )
    member = world.a.user("member")
    session_id = _open_session(member)
    asker = member
    if refusal == "closed":
        call("POST", f"/api/chat/sessions/{session_id}/close", user=member)
    else:
        asker = world.a.user("admin")
    before = owner_conn.execute(
        """
        SELECT (SELECT count(*) FROM alquimista_platform.policy_evaluations) AS evaluations,
               (SELECT count(*) FROM alquimista_platform.approval_requests) AS approvals,
               (SELECT count(*) FROM alquimista_platform.audit_logs) AS audit,
               (SELECT count(*) FROM alquimista_platform.domain_outbox) AS events
        """
    ).fetchone()

    # When a message about a contract is sent to that session
    refused = _ask(asker, session_id, "Resuma o contrato de prestação de serviços")

    # Then it is refused, and the gate's evaluation, approval request, audit row and event
    # were rolled back with the question
    expected = (
        (409, "chat_session_closed") if refusal == "closed" else (404, "chat_session_not_found")
    )
    assert (refused.status, refused.body["error"]["code"]) == expected
    after = owner_conn.execute(
        """
        SELECT (SELECT count(*) FROM alquimista_platform.policy_evaluations) AS evaluations,
               (SELECT count(*) FROM alquimista_platform.approval_requests) AS approvals,
               (SELECT count(*) FROM alquimista_platform.audit_logs) AS audit,
               (SELECT count(*) FROM alquimista_platform.domain_outbox) AS events
        """
    ).fetchone()
    assert after == before
    assert owner_conn.execute("SELECT count(*) AS n FROM chat.messages").fetchone() == {"n": 0}
    assert llm.stats.total == 0


def test_over_quota_in_a_month_already_open_is_429_and_gives_the_question_up(
    world: World, llm: RunningLlmServer, db: TestDatabase, owner_conn: Conn
) -> None:
    # Given a month whose counter is open (a first message was answered) and then nearly spent
    member = world.a.user("member")
    session_id = _open_session(member)
    assert _ask(member, session_id, "Qual é o prazo?").status == 201
    used = owner_conn.execute(
        "SELECT used FROM chat.token_usage WHERE tenant_id = %s", (world.a.id,)
    ).fetchone()
    assert used is not None
    with db.owner() as conn:
        TokenQuotaRepository(conn, world.a.id).set_monthly_limit(used["used"] + 10)
    completions = llm.stats.completions

    # When the next message needs more than is left
    refused = _ask(member, session_id, "E a nota fiscal?")

    # Then it is refused before the model, holding nothing, and the question failed
    assert (refused.status, refused.body["error"]["code"]) == (429, "token_quota_exceeded")
    assert llm.stats.completions == completions
    quota = owner_conn.execute(
        "SELECT used, reserved FROM chat.token_usage WHERE tenant_id = %s", (world.a.id,)
    ).fetchone()
    assert quota == {"used": used["used"], "reserved": 0}
    statuses = owner_conn.execute(
        "SELECT status FROM chat.messages WHERE role = 'user' ORDER BY created_at"
    ).fetchall()
    assert [s["status"] for s in statuses] == ["answered", "failed"]
