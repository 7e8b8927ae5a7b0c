"""Chat's message use case with fakes of its ports: the gate decides before any provider call,
tokens are reserved first and settled or released after, answers cite their passages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from lambdas.chat.errors import LlmUnavailable, TokenQuotaExceeded
from lambdas.chat.models import ChatTurn, Completion, Message, Reservation, RetrievedChunk, Session
from lambdas.chat.service import (
    GateVerdict,
    MessageSubject,
    Pricing,
    SessionClosed,
    build_prompt,
    send_message,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class FakeChat:
    sessions: dict[uuid.UUID, Session] = field(default_factory=dict)
    messages: dict[uuid.UUID, Message] = field(default_factory=dict)
    references: dict[uuid.UUID, list[RetrievedChunk]] = field(default_factory=dict)
    usage: list[dict[str, Any]] = field(default_factory=list)

    def get_session(self, session_id, *, for_update=False):
        return self.sessions.get(session_id)

    def add_message(self, *, session_id, role, content, status, **extra):
        message = Message(
            id=uuid.uuid4(),
            session_id=session_id,
            role=role,
            content=content,
            status=status,
            model=extra.get("model"),
            prompt_tokens=extra.get("prompt_tokens", 0),
            completion_tokens=extra.get("completion_tokens", 0),
            approval_request_id=extra.get("approval_request_id"),
            reply_to=extra.get("reply_to"),
            created_at=NOW,
        )
        self.messages[message.id] = message
        return message

    def set_message_status(self, message_id, status, *, error_code=None):
        old = self.messages[message_id]
        self.messages[message_id] = Message(**{**old.__dict__, "status": status})
        return True

    def add_references(self, message_id, chunks):
        self.references[message_id] = list(chunks)

    def log_usage(self, **row):
        self.usage.append(row)


@dataclass
class FakeQuotas:
    limit: int
    used: int = 0
    held: dict[uuid.UUID, int] = field(default_factory=dict)

    def reserve(self, tokens, *, user_id):
        if self.used + sum(self.held.values()) + tokens > self.limit:
            raise TokenQuotaExceeded("quota exhausted")
        reservation = Reservation(uuid.uuid4(), tokens, NOW + timedelta(minutes=5))
        self.held[reservation.id] = tokens
        return reservation

    def settle(self, reservation_id, actual_tokens):
        self.held.pop(reservation_id)
        self.used += actual_tokens
        return True

    def release(self, reservation_id):
        return self.held.pop(reservation_id, None) is not None


@dataclass
class FakeUow:
    chat: FakeChat
    quotas: FakeQuotas
    commits: int = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def commit(self):
        self.commits += 1


@dataclass
class FakeLlm:
    fail: Exception | None = None
    calls: list[list[ChatTurn]] = field(default_factory=list)

    def complete(self, turns, *, max_tokens):
        self.calls.append(list(turns))
        if self.fail:
            raise self.fail
        return Completion(
            "Segundo [1]: trinta dias.", "m-1", prompt_tokens=90, completion_tokens=10
        )


CHUNK = RetrievedChunk(
    chunk_id=uuid.uuid4(),
    document_id=uuid.uuid4(),
    document_title="CLT",
    tenant_id=None,
    index=0,
    content="O aviso prévio é de trinta dias.",
    score=0.03,
    semantic_rank=1,
    lexical_rank=1,
)


class FakeRetriever:
    def retrieve(self, question, *, k):
        return [CHUNK][:k]


@dataclass
class FakeGate:
    verdict: GateVerdict

    def authorize(self, subject):
        return self.verdict


@pytest.fixture
def world():
    chat = FakeChat()
    session = Session(uuid.uuid4(), uuid.uuid4(), "", "open", NOW, None)
    chat.sessions[session.id] = session
    uow = FakeUow(chat, FakeQuotas(limit=10_000))
    subject = MessageSubject(uuid.uuid4(), session.user_id, session.id, "Qual o aviso prévio?")
    return uow, subject


ALLOW = GateVerdict("allow")


def _send(
    uow: FakeUow,
    subject: MessageSubject,
    *,
    verdict: GateVerdict = ALLOW,
    llm: FakeLlm | None = None,
) -> Any:
    return send_message(
        lambda: uow,
        gate=FakeGate(verdict),
        retriever=FakeRetriever(),
        llm=llm or FakeLlm(),
        subject=subject,
        model="m-1",
        pricing=Pricing(Decimal("0.001"), Decimal("0.002")),
    )


def test_an_allowed_message_is_answered_with_citations_and_settled(world) -> None:
    uow, subject = world
    outcome = _send(uow, subject)
    assert outcome.answer is not None
    assert outcome.answer.content == "Segundo [1]: trinta dias."
    assert uow.chat.messages[outcome.question.id].status == "answered"
    assert uow.chat.references[outcome.answer.id] == [CHUNK]
    assert (uow.quotas.used, uow.quotas.held) == (100, {})
    assert uow.chat.usage[0]["cost_estimate"] == Decimal(
        "0.00011"
    )  # (90 x 0.001 + 10 x 0.002) / 1000


def test_a_blocked_message_never_reaches_the_provider(world) -> None:
    uow, subject = world
    llm = FakeLlm()
    outcome = _send(
        uow, subject, verdict=GateVerdict("blocked", reason="palavra proibida"), llm=llm
    )
    assert (outcome.answer, outcome.question.status) == (None, "blocked")
    assert llm.calls == []
    assert (uow.quotas.used, uow.quotas.held) == (0, {})


def test_a_message_needing_approval_is_pending(world) -> None:
    uow, subject = world
    approval = uuid.uuid4()
    llm = FakeLlm()
    outcome = _send(
        uow, subject, verdict=GateVerdict("pending", approval_request_id=approval), llm=llm
    )
    assert outcome.question.status == "pending"
    assert outcome.question.approval_request_id == approval
    assert llm.calls == []


def test_a_provider_failure_releases_the_tokens_and_fails_the_message(world) -> None:
    uow, subject = world
    with pytest.raises(LlmUnavailable):
        _send(uow, subject, llm=FakeLlm(fail=LlmUnavailable("down")))
    [question] = uow.chat.messages.values()
    assert question.status == "failed"
    assert (uow.quotas.used, uow.quotas.held) == (0, {})


def test_over_quota_nothing_reaches_the_provider(world) -> None:
    uow, subject = world
    uow.quotas.limit = 10
    llm = FakeLlm()
    with pytest.raises(TokenQuotaExceeded):
        _send(uow, subject, llm=llm)
    assert llm.calls == []


def test_a_closed_session_takes_no_message(world) -> None:
    uow, subject = world
    session = uow.chat.sessions[subject.session_id]
    uow.chat.sessions[session.id] = Session(**{**session.__dict__, "status": "closed"})
    with pytest.raises(SessionClosed):
        _send(uow, subject)
    assert uow.chat.messages == {}


def test_the_prompt_numbers_the_passages() -> None:
    turns = build_prompt("Qual o prazo?", [CHUNK])
    assert "[1] O aviso prévio é de trinta dias. (fonte: CLT)" in turns[0].content
    assert turns[1] == ChatTurn("user", "Qual o prazo?")
