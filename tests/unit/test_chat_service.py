"""Chat's message use case with fakes of its ports: the gate decides before any provider call,
tokens are reserved first and settled or released after, answers cite their passages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from lambdas.chat.errors import (
    LlmUnavailable,
    QuestionRefused,
    SessionClosed,
    SessionNotFound,
    TokenQuotaExceeded,
)
from lambdas.chat.models import (
    AnswerDraft,
    ChatTurn,
    Completion,
    Message,
    Reservation,
    RetrievedChunk,
    Session,
)
from lambdas.chat.service import (
    GateVerdict,
    MessageNotPending,
    MessageSubject,
    Pricing,
    QueryVector,
    build_prompt,
    resume_message,
    send_message,
)
from lambdas.shared.gate import ActionBlocked

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class FakeChat:
    sessions: dict[uuid.UUID, Session] = field(default_factory=dict)
    messages: dict[uuid.UUID, Message] = field(default_factory=dict)
    references: dict[uuid.UUID, list[RetrievedChunk]] = field(default_factory=dict)
    usage: list[dict[str, Any]] = field(default_factory=list)

    def get_session(self, session_id, *, for_update=False):
        return self.sessions.get(session_id)

    def get_message(self, message_id, *, for_update=False):
        return self.messages.get(message_id)

    def add_question(
        self,
        *,
        message_id: Any,
        session_id: Any,
        user_id: Any,
        content: Any,
        status: Any,
        approval_request_id: Any = None,
        error_code: Any = None,
    ) -> Message:
        # as migration 060's chat.add_question_v1: the caller's open session, else refused
        session = self.sessions.get(session_id)
        if session is None or session.user_id != user_id:
            raise QuestionRefused(session_closed=False)
        if session.status != "open":
            raise QuestionRefused(session_closed=True)
        message = Message(
            id=message_id,
            session_id=session_id,
            role="user",
            content=content,
            status=status,
            model=None,
            prompt_tokens=0,
            completion_tokens=0,
            approval_request_id=approval_request_id,
            reply_to=None,
            created_at=NOW,
        )
        self.messages[message.id] = message
        return message

    def set_message_status(self, message_id, status, *, error_code=None, only_from=None):
        old = self.messages[message_id]
        if only_from is not None and old.status != only_from:
            return False
        self.messages[message_id] = Message(**{**old.__dict__, "status": status})
        return True

    def store_answer(self, draft: AnswerDraft) -> Message:
        """The answer's writes in ``ChatRepository.settle_and_store_answer``: the answer, its
        citations, the question answered, the usage row."""
        question, completion = draft.question, draft.completion
        answer = Message(
            id=draft.answer_id,
            session_id=question.session_id,
            role="assistant",
            content=completion.text,
            status="answered",
            model=completion.model,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            approval_request_id=None,
            reply_to=question.id,
            created_at=NOW,
        )
        self.messages[answer.id] = answer
        self.references[answer.id] = list(draft.chunks)
        self.messages[question.id] = Message(**{**question.__dict__, "status": "answered"})
        self.usage.append(
            {
                "user_id": draft.user_id,
                "cost_estimate": draft.cost_estimate,
                "reservation_id": draft.reservation_id,
            }
        )
        return answer


@dataclass
class FakeQuotas:
    limit: int
    used: int = 0
    held: dict[uuid.UUID, int] = field(default_factory=dict)

    def reserve(self, tokens: int, *, user_id: Any) -> Reservation:
        if self.used + sum(self.held.values()) + tokens > self.limit:
            raise TokenQuotaExceeded("quota exhausted")
        reservation = Reservation(uuid.uuid4(), tokens, NOW + timedelta(minutes=5))
        self.held[reservation.id] = tokens
        return reservation

    def settle(self, reservation_id: Any, actual_tokens: int) -> None:
        """The settlement in the answer's statement (``quota_repository.SETTLE_CTES``): the held
        tokens replaced by those used, once."""
        if self.held.pop(reservation_id, None) is not None:
            self.used += actual_tokens

    def release(self, reservation_id):
        return self.held.pop(reservation_id, None) is not None


@dataclass
class FakeGate:
    verdict: GateVerdict
    subjects: list[MessageSubject] = field(default_factory=list)
    rechecked: list[GateVerdict] = field(default_factory=list)

    def authorize(self, subject):
        self.subjects.append(subject)
        return self.verdict

    def recheck(self, verdict):
        self.rechecked.append(verdict)


class FakeKnowledge:
    """The knowledge base's side of a unit that opens with a search."""

    def __init__(self) -> None:
        self.searched: list[tuple[str, str]] = []

    def search(self, *, text: str, embedding: Any, model: str, k: int) -> list[Any]:
        self.searched.append((text, model))
        return [CHUNK][:k]


@dataclass
class FakeUow:
    chat: FakeChat
    quotas: FakeQuotas
    knowledge: FakeKnowledge = field(default_factory=FakeKnowledge)
    gate: FakeGate = field(default_factory=lambda: FakeGate(GateVerdict("allow")))
    commits: int = 0
    # each commit in order: "flushed" waits for the WAL flush, "unflushed" does not
    durability: list[str] = field(default_factory=list)
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def record(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Any,
        version: int = 1,
    ) -> None:
        self.records.append((event_type, dict(payload)))

    found: list[Any] = field(default_factory=list)

    def searching(self, *, text: str, embedding: Any, model: str, k: int) -> FakeUow:
        # the search sent with BEGIN: its chunks are there once the unit is entered
        self.found = self.knowledge.search(text=text, embedding=embedding, model=model, k=k)
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def commit(self) -> None:
        self.commits += 1
        self.durability.append("flushed")

    def commit_unflushed(self) -> None:
        self.commits += 1
        self.durability.append("unflushed")

    def commit_question(self, *, message_id, session_id, user_id, content, status, **extra):
        question = self.chat.add_question(
            message_id=message_id,
            session_id=session_id,
            user_id=user_id,
            content=content,
            status=status,
            **extra,
        )
        self.commit()
        return question

    def commit_reservation(self, tokens, *, user_id):
        try:
            reservation = self.quotas.reserve(tokens, user_id=user_id)
        except TokenQuotaExceeded:
            return None  # nothing reserved, nothing written
        self.commit_unflushed()
        return reservation

    def commit_answer(self, answer, event):
        # as ChatRepository.settle_and_store_answer's one statement, sent with the COMMIT
        self.quotas.settle(answer.reservation_id, answer.completion.total_tokens)
        stored = self.chat.store_answer(answer)
        self.record(
            event.event_type,
            aggregate_type=event.aggregate_type,
            aggregate_id=event.aggregate_id,
            payload=event.payload,
        )
        self.commit()
        return stored


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
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail

    def embed(self, question):
        if self.fail:
            raise self.fail
        return QueryVector("e-1", [0.1, 0.2])


@pytest.fixture
def world():
    chat = FakeChat()
    session = Session(uuid.uuid4(), uuid.uuid4(), "", "open", NOW, None)
    chat.sessions[session.id] = session
    uow = FakeUow(chat, FakeQuotas(limit=10_000))
    subject = MessageSubject(
        uuid.uuid4(), session.user_id, session.id, "Qual o aviso prévio?", uuid.uuid4()
    )
    return uow, subject


ALLOW = GateVerdict("allow")


def _send(
    uow: FakeUow,
    subject: MessageSubject,
    *,
    verdict: GateVerdict = ALLOW,
    llm: FakeLlm | None = None,
    retriever: FakeRetriever | None = None,
) -> Any:
    uow.gate.verdict = verdict
    return send_message(
        lambda: uow,
        retriever=retriever or FakeRetriever(),
        llm=llm or FakeLlm(),
        session_id=subject.session_id,
        tenant_id=subject.tenant_id,
        user_id=subject.user_id,
        content=subject.content,
        model="m-1",
        pricing=Pricing(Decimal("0.001"), Decimal("0.002")),
    )


def test_an_allowed_message_is_answered_with_citations_and_settled(world) -> None:
    uow, subject = world
    outcome = _send(uow, subject)
    assert outcome.answer is not None
    assert outcome.answer.content == "Segundo [1]: trinta dias."
    assert outcome.question.status == "answered"
    assert uow.chat.messages[outcome.question.id].status == "answered"
    assert uow.chat.references[outcome.answer.id] == [CHUNK]
    assert (uow.quotas.used, uow.quotas.held) == (100, {})
    assert uow.chat.usage[0]["cost_estimate"] == Decimal(
        "0.00011"
    )  # (90 x 0.001 + 10 x 0.002) / 1000
    [(event, payload)] = uow.records
    assert event == "chat_message.answered"
    assert payload["question_id"] == outcome.question.id
    assert [c.chunk_id for c in outcome.answer.citations] == [CHUNK.chunk_id]


def test_only_the_reservation_commits_without_waiting_for_the_flush(world) -> None:
    # the question and the verdict, the reservation, the answer: the last commit waits for the
    # WAL flush and so makes the reservation's durable too
    uow, subject = world
    _send(uow, subject)
    assert uow.durability == ["flushed", "unflushed", "flushed"]


def test_a_provider_failure_ends_with_a_flushed_commit(world) -> None:
    uow, subject = world
    with pytest.raises(LlmUnavailable):
        _send(uow, subject, llm=FakeLlm(fail=LlmUnavailable("down")))
    assert uow.durability == ["flushed", "unflushed", "flushed"]


def test_the_gate_sees_the_question_under_its_message_id(world) -> None:
    uow, subject = world
    outcome = _send(uow, subject)
    [seen] = uow.gate.subjects
    assert seen.message_id == outcome.question.id
    assert seen.content == subject.content
    assert seen.estimated_tokens > 0
    assert uow.gate.rechecked == [ALLOW]


def test_a_blocked_message_never_reaches_the_provider(world) -> None:
    uow, subject = world
    llm = FakeLlm()
    with pytest.raises(ActionBlocked):
        _send(uow, subject, verdict=GateVerdict("blocked", reason="palavra proibida"), llm=llm)
    [question] = uow.chat.messages.values()
    assert question.status == "blocked"
    assert llm.calls == []
    assert uow.records == []
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
    [question] = uow.chat.messages.values()
    assert question.status == "failed"


def test_the_search_runs_with_the_questions_embedding_model(world) -> None:
    uow, subject = world
    _send(uow, subject)
    assert uow.knowledge.searched == [(subject.content, "e-1")]


def test_an_embedding_failure_fails_the_message_and_reserves_nothing(world) -> None:
    uow, subject = world
    llm = FakeLlm()
    with pytest.raises(LlmUnavailable):
        _send(uow, subject, llm=llm, retriever=FakeRetriever(fail=LlmUnavailable("down")))
    [question] = uow.chat.messages.values()
    assert question.status == "failed"
    assert (llm.calls, uow.quotas.held) == ([], {})


def _resume(uow: FakeUow, subject: MessageSubject, message_id: uuid.UUID) -> Any:
    return resume_message(
        lambda: uow,
        retriever=FakeRetriever(),
        llm=FakeLlm(),
        session_id=subject.session_id,
        message_id=message_id,
        tenant_id=subject.tenant_id,
        user_id=subject.user_id,
        model="m-1",
    )


def test_an_approved_question_over_quota_waits_again_to_be_resumed(world) -> None:
    uow, subject = world
    pending = _send(uow, subject, verdict=GateVerdict("pending", approval_request_id=uuid.uuid4()))
    uow.gate.verdict = ALLOW
    uow.quotas.limit = 10
    with pytest.raises(TokenQuotaExceeded):
        _resume(uow, subject, pending.question.id)
    assert uow.chat.messages[pending.question.id].status == "pending"
    uow.quotas.limit = 10_000
    assert _resume(uow, subject, pending.question.id).answer is not None


def test_a_question_being_answered_cannot_be_resumed(world) -> None:
    uow, subject = world
    pending = _send(uow, subject, verdict=GateVerdict("pending", approval_request_id=uuid.uuid4()))
    uow.chat.set_message_status(pending.question.id, "answering")
    uow.gate.verdict = ALLOW
    with pytest.raises(MessageNotPending):
        _resume(uow, subject, pending.question.id)


def test_a_pending_question_is_answered_once_approved(world) -> None:
    uow, subject = world
    approval = uuid.uuid4()
    pending = _send(uow, subject, verdict=GateVerdict("pending", approval_request_id=approval))
    approved = GateVerdict("allow", approval_request_id=approval, evaluation_id=uuid.uuid4())
    uow.gate.verdict = approved

    outcome = resume_message(
        lambda: uow,
        retriever=FakeRetriever(),
        llm=FakeLlm(),
        session_id=subject.session_id,
        message_id=pending.question.id,
        tenant_id=subject.tenant_id,
        user_id=subject.user_id,
        model="m-1",
    )

    assert outcome.answer is not None
    assert outcome.question.status == "answered"
    assert uow.chat.messages[pending.question.id].status == "answered"
    assert uow.gate.rechecked == [approved]


def test_a_question_rejected_while_pending_is_refused_and_reads_blocked(world) -> None:
    uow, subject = world
    pending = _send(uow, subject, verdict=GateVerdict("pending", approval_request_id=uuid.uuid4()))
    uow.gate.verdict = GateVerdict("blocked", reason="rejeitada")
    llm = FakeLlm()

    with pytest.raises(ActionBlocked):
        resume_message(
            lambda: uow,
            retriever=FakeRetriever(),
            llm=llm,
            session_id=subject.session_id,
            message_id=pending.question.id,
            tenant_id=subject.tenant_id,
            user_id=subject.user_id,
            model="m-1",
        )

    assert uow.chat.messages[pending.question.id].status == "blocked"
    assert llm.calls == []


def test_only_a_pending_question_can_be_resumed(world) -> None:
    uow, subject = world
    answered = _send(uow, subject)
    with pytest.raises(MessageNotPending):
        resume_message(
            lambda: uow,
            retriever=FakeRetriever(),
            llm=FakeLlm(),
            session_id=subject.session_id,
            message_id=answered.question.id,
            tenant_id=subject.tenant_id,
            user_id=subject.user_id,
            model="m-1",
        )


def test_another_users_session_is_not_found(world) -> None:
    uow, subject = world
    stranger = MessageSubject(
        subject.tenant_id, uuid.uuid4(), subject.session_id, "Olá", uuid.uuid4()
    )
    with pytest.raises(SessionNotFound):
        _send(uow, stranger)
    assert uow.chat.messages == {}


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
