"""Sessions, messages with citations, feedback and the usage report on the real PostgreSQL as
the runtime role, and what another tenant sees of them (nothing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from lambdas.audit.repository import AuditRepository
from lambdas.chat.chat_repository import ChatRepository
from lambdas.chat.models import ChunkDraft, DocumentDraft, EmbeddedChunk, RetrievedChunk
from lambdas.shared.audit import verify_chain
from tests.support.audit import scoped
from tests.support.chat import ChatCalls, OwnerUnitOfWork, runtime_database
from tests.support.factories import TestTenant, create_tenant


@pytest.fixture
def tenants(owner: psycopg.Connection[Any]) -> tuple[TestTenant, TestTenant]:
    return create_tenant(owner), create_tenant(owner)


class _Chat:
    def __init__(self, db: Any, tenant: TestTenant) -> None:
        self._database = runtime_database(db)
        self._tenant = tenant

    def __enter__(self) -> ChatRepository:
        self._conn, _ = self._database.begin(self._tenant.id, read_only=False)
        return ChatRepository(self._conn, self._tenant.id)

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self._conn.commit()
        else:
            self._conn.rollback()


def _global_chunk(db: Any) -> RetrievedChunk:
    with OwnerUnitOfWork(db, None) as uow:
        draft = DocumentDraft(None, "CLT", "s3://docs/clt.pdf", "a" * 64)
        document_id = uow.knowledge.create_document(draft)
        uow.knowledge.store_chunks(
            [
                (
                    document_id,
                    [EmbeddedChunk(ChunkDraft(0, "Aviso prévio de 30 dias.", 6), [1.0] * 1536)],
                )
            ],
            model="m",
        )
        uow.commit()
    with db.owner() as owner:
        row = owner.execute("SELECT id FROM knowledge.chunks").fetchone()
    assert row is not None
    chunk_id = row["id"]
    return RetrievedChunk(chunk_id, document_id, "CLT", None, 0, "Aviso prévio", 0.03, 1, 1)


def _reserve(db: Any, tenant: TestTenant, tokens: int) -> UUID:
    with ChatCalls(db, tenant.id).work() as work:
        reservation = work.quotas.reserve(tokens, user_id=None)
        work.commit()
    return reservation.id


def test_a_conversation_is_kept_with_its_citations_and_feedback(db, tenants) -> None:
    # Given a member's question, answered citing a passage, as the message route stores them
    a, _ = tenants
    user = a.user("member").id
    chunk = _global_chunk(db)
    calls = ChatCalls(db, a.id)
    question = calls.ask(user, "Qual o aviso?")
    answer = calls.answer(
        question,
        _reserve(db, a, 200),
        prompt_tokens=90,
        completion_tokens=10,
        chunks=[chunk],
        user_id=user,
    )
    # When the member rates the answer (twice: the last rating stands) and then the question
    with _Chat(db, a) as chat:
        assert chat.add_feedback(answer.id, user_id=user, rating=5, comment="ótimo") is not None
        assert chat.add_feedback(answer.id, user_id=user, rating=2, comment=None) is not None
        assert chat.add_feedback(question.id, user_id=user, rating=5, comment=None) is None

    # Then the history holds both, the answer with its citation, and the usage report the call
    with _Chat(db, a) as chat:
        history = chat.history(question.session_id)
        assert [(m.id, m.role, m.status) for m in history] == [
            (question.id, "user", "answered"),
            (answer.id, "assistant", "answered"),
        ]
        assert history[1].reply_to == question.id
        [citation] = history[1].citations
        assert (citation.rank, citation.chunk_id, citation.document_title) == (
            1,
            chunk.chunk_id,
            "CLT",
        )
        assert [s.id for s in chat.list_sessions(user, limit=10)] == [question.session_id]
        closed = chat.close_session(question.session_id)
        assert closed is not None
        assert closed.status == "closed"
        today = datetime.now(UTC).date()
        [usage] = chat.usage(since=today, until=today + timedelta(days=1))
        assert (usage.user_id, usage.calls, usage.prompt_tokens, usage.completion_tokens) == (
            user,
            1,
            90,
            10,
        )
    with db.owner() as owner:
        rating = owner.execute("SELECT rating FROM chat.message_feedback").fetchall()
        audit = owner.execute(
            "SELECT action, resource_type, resource_id, actor_type, outcome, request_id,"
            " metadata FROM alquimista_platform.audit_logs WHERE tenant_id = %s",
            (a.id,),
        ).fetchall()
        events = owner.execute(
            "SELECT event_type, aggregate_type, aggregate_id, payload"
            " FROM alquimista_platform.domain_outbox WHERE tenant_id = %s",
            (a.id,),
        ).fetchall()
    assert rating == [{"rating": 2}]
    # and the answer was recorded as ``ChangeWriter.record`` records a change
    payload = {
        "answer_id": str(answer.id),
        "session_id": str(question.session_id),
        "question_id": str(question.id),
        "model": "m-1",
        "prompt_tokens": 90,
        "completion_tokens": 10,
        "citations": 1,
    }
    assert audit == [
        {
            "action": "chat_message.answered",
            "resource_type": "chat_message",
            "resource_id": str(answer.id),
            "actor_type": "system",
            "outcome": "success",
            "request_id": "req-chat",
            "metadata": payload,
        }
    ]
    assert events == [
        {
            "event_type": "chat_message.answered",
            "aggregate_type": "chat_message",
            "aggregate_id": str(answer.id),
            "payload": payload,
        }
    ]
    with scoped(db, a.id) as conn:
        assert verify_chain(AuditRepository(conn, a.id).stream()).ok


def test_another_tenant_sees_nothing_of_a_conversation(db, tenants) -> None:
    a, b = tenants
    calls = ChatCalls(db, a.id)
    question = calls.ask(a.user("member").id)
    answer = calls.answer(question, _reserve(db, a, 10), prompt_tokens=1, completion_tokens=1)
    with _Chat(db, b) as chat:
        assert chat.get_session(question.session_id) is None
        assert chat.get_message(answer.id) is None
        assert chat.history(question.session_id) == []
        assert chat.close_session(question.session_id) is None
        assert (
            chat.add_feedback(answer.id, user_id=b.user("member").id, rating=1, comment=None)
            is None
        )
    # and the runtime role cannot write a row into another tenant either
    with pytest.raises(psycopg.errors.InsufficientPrivilege), _Chat(db, b) as chat:
        chat._conn.execute(
            "INSERT INTO chat.sessions (tenant_id, user_id) VALUES (%s, %s)",
            (a.id, a.user("member").id),
        )


def test_pagination_of_sessions_goes_backwards_in_time(db, tenants) -> None:
    a, _ = tenants
    user = a.user("member").id
    with _Chat(db, a) as chat:
        first = chat.create_session(user, "1")
    with _Chat(db, a) as chat:
        second = chat.create_session(user, "2")
    with _Chat(db, a) as chat:
        assert [s.id for s in chat.list_sessions(user, limit=1)] == [second.id]
        assert [s.id for s in chat.list_sessions(user, limit=5, before=second.id)] == [first.id]


def test_a_question_goes_only_into_its_users_open_session_in_its_tenant(db, tenants) -> None:
    import uuid  # noqa: PLC0415

    from lambdas.chat.errors import QuestionRefused  # noqa: PLC0415

    a, b = tenants
    member = a.user("member")

    def ask(tenant: TestTenant, session_id: Any, user_id: Any) -> Any:
        with _Chat(db, tenant) as chat:
            return chat.add_question(
                message_id=uuid.uuid4(),
                session_id=session_id,
                user_id=user_id,
                content="Qual o prazo?",
                status="answering",
                approval_request_id=None,
                error_code=None,
            )

    with _Chat(db, a) as chat:
        session = chat.create_session(member.id)
        closed = chat.create_session(member.id)
        chat.close_session(closed.id)

    question = ask(a, session.id, member.id)
    assert (question.session_id, question.role, question.status) == (
        session.id,
        "user",
        "answering",
    )
    refusals = [
        (b, session.id, member.id),  # another tenant: RLS and the tenant filter hide it
        (a, session.id, a.user("admin").id),  # another user of the tenant
        (a, uuid.uuid4(), member.id),
        (a, closed.id, member.id),
    ]
    closed_flags = []
    for tenant, session_id, user_id in refusals:
        with pytest.raises(QuestionRefused) as refused:
            ask(tenant, session_id, user_id)
        closed_flags.append(refused.value.session_closed)
    assert closed_flags == [False, False, False, True]
    with _Chat(db, a) as chat:
        assert [m.id for m in chat.history(session.id)] == [question.id]
        assert chat.history(closed.id) == []
