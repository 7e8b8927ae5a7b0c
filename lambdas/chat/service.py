"""Chat use cases over injected ports: the retriever, the LLM and a unit of work holding the
chat, quota and knowledge repositories and the policy gate. The HTTP routes only parse and call
these.

A message: the gate's verdict, then the question stored in its open session with the COMMIT
(one round trip) -> the question's embedding with no transaction open -> the search and the
token reservation in one transaction, the reservation sent with the COMMIT (committed before
the model is called, so concurrent requests never exceed the quota) -> the model with no
transaction open -> the settlement, the answer with its citations and usage, its audit row and
``chat_message.answered``, sent with the COMMIT. A blocked or pending question never reaches
the provider; a pending one is answered by ``resume_message`` once approved, moving from
``pending`` to ``answering`` under its row lock so that two resumes cannot both answer it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, Protocol
from uuid import UUID, uuid4

from lambdas.chat.errors import (
    LlmProviderError,
    LlmUnavailable,
    QuestionRefused,
    SessionClosed,
    SessionNotFound,
    TokenQuotaExceeded,
)
from lambdas.chat.models import (
    AnswerDraft,
    ChatTurn,
    Citation,
    Completion,
    Message,
    MessageStatus,
    Reservation,
    RetrievedChunk,
    Session,
)
from lambdas.chat.text import estimate_tokens
from lambdas.shared.errors import Conflict, NotFound
from lambdas.shared.gate import ActionBlocked
from lambdas.shared.scope import EventDraft

SYSTEM_PROMPT = (
    "Você é o assistente da plataforma Alquimista. Responda em português, apenas com base nos "
    "trechos numerados abaixo, citando-os como [n]. Se a resposta não estiver nos trechos, "
    "diga que não a encontrou."
)


class MessageNotFound(NotFound):
    code = "chat_message_not_found"


_QUESTION_STATUS: dict[str, MessageStatus] = {
    "allow": "answering",
    "blocked": "blocked",
    "pending": "pending",
}


class MessageNotPending(Conflict):
    """Only a question waiting for approval can be resumed."""

    code = "chat_message_not_pending"


@dataclass(frozen=True)
class GateVerdict:
    outcome: Literal["allow", "blocked", "pending"]
    reason: str | None = None
    approval_request_id: UUID | None = None
    evaluation_id: UUID | None = None


@dataclass(frozen=True)
class MessageSubject:
    """What the gate evaluates: who sends what, where. ``message_id`` is the question's id, the
    subject id an approval request is filed under (so a resumed question finds it)."""

    tenant_id: UUID
    user_id: UUID
    session_id: UUID
    content: str
    message_id: UUID
    estimated_tokens: int = 0


class Gate(Protocol):
    """The tenant's policies and approvals, evaluated in the unit of work's transaction."""

    def authorize(self, subject: MessageSubject) -> GateVerdict: ...

    def recheck(self, verdict: GateVerdict) -> None:
        """Before commit: the approval an allow verdict relied on is still approved."""


@dataclass(frozen=True)
class QueryVector:
    """A question's embedding and the model that made it (the search compares like with like)."""

    model: str
    values: Sequence[float]


class Retriever(Protocol):
    """Embeds a question (a provider call: no transaction may be open around it)."""

    def embed(self, question: str) -> QueryVector: ...


class Llm(Protocol):
    def complete(self, turns: Sequence[ChatTurn], *, max_tokens: int) -> Completion: ...


class ChatStore(Protocol):
    def get_session(self, session_id: UUID, *, for_update: bool = False) -> Session | None: ...

    def get_message(self, message_id: UUID, *, for_update: bool = False) -> Message | None: ...

    def set_message_status(
        self,
        message_id: UUID,
        status: MessageStatus,
        *,
        error_code: str | None = None,
        only_from: MessageStatus | None = None,
    ) -> bool: ...


class QuotaStore(Protocol):
    def reserve(self, tokens: int, *, user_id: UUID | None) -> Reservation: ...

    def release(self, reservation_id: UUID) -> bool: ...


class ChatUow(AbstractContextManager["ChatUow"], Protocol):
    @property
    def chat(self) -> ChatStore: ...

    @property
    def quotas(self) -> QuotaStore: ...

    def searching(self, *, text: str, embedding: Sequence[float], model: str, k: int) -> ChatUow:
        """The same unit, its transaction to open with this knowledge search (in BEGIN's round
        trip): the ``k`` best of the tenant's and the global chunks, vector and full-text
        rankings fused."""

    @property
    def found(self) -> list[RetrievedChunk]:
        """The chunks of the search the unit opened with, best first."""

    @property
    def gate(self) -> Gate: ...

    def record(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> None: ...

    def commit(self) -> None: ...

    def commit_unflushed(self) -> None:
        """Commit without waiting for the WAL flush: visible to every other transaction at
        once (a reservation holds from then on), durable with the next commit that waits."""

    def commit_question(
        self,
        *,
        message_id: UUID,
        session_id: UUID,
        user_id: UUID,
        content: str,
        status: MessageStatus,
        approval_request_id: UUID | None = None,
        error_code: str | None = None,
    ) -> Message:
        """Store a user's question in their open session and commit, in one round trip. Raises
        ``QuestionRefused`` (the session is not the caller's, or is closed), and then nothing is
        committed."""

    def commit_reservation(self, tokens: int, *, user_id: UUID | None) -> Reservation | None:
        """Reserve ``tokens`` in the month's open counter and commit unflushed, in one round
        trip; None when nothing was reserved (the month's counter not open yet, or the quota
        exhausted: ``quotas.reserve`` tells which), and then nothing was written."""

    def commit_answer(self, answer: AnswerDraft, event: EventDraft) -> Message:
        """Settle the answer's reservation, store it with its citations and usage, record
        ``event`` (audit row and outbox event) and commit, in one round trip."""


@dataclass(frozen=True)
class MessageOutcome:
    question: Message
    answer: Message | None
    verdict: GateVerdict


@dataclass(frozen=True)
class Pricing:
    """Cost per 1,000 tokens of the configured model (an estimate for the usage report)."""

    prompt_per_1k: Decimal = Decimal(0)
    completion_per_1k: Decimal = Decimal(0)

    def cost(self, completion: Completion) -> Decimal:
        return (
            self.prompt_per_1k * completion.prompt_tokens
            + self.completion_per_1k * completion.completion_tokens
        ) / 1000


@dataclass(frozen=True)
class Answering:
    """How an allowed question is answered: where passages come from, which model, how much."""

    retriever: Retriever
    llm: Llm
    model: str
    k: int
    max_completion_tokens: int
    pricing: Pricing


def build_prompt(question: str, chunks: Sequence[RetrievedChunk]) -> list[ChatTurn]:
    """The system prompt with the numbered passages, then the user's question."""
    passages = "\n".join(
        f"[{rank}] {chunk.content} (fonte: {chunk.document_title})"
        for rank, chunk in enumerate(chunks, start=1)
    )
    return [
        ChatTurn("system", f"{SYSTEM_PROMPT}\n\nTrechos:\n{passages}"),
        ChatTurn("user", question),
    ]


def send_message(
    uow: Callable[[], ChatUow],
    *,
    retriever: Retriever,
    llm: Llm,
    session_id: UUID,
    tenant_id: UUID,
    user_id: UUID,
    content: str,
    model: str,
    k: int = 5,
    max_completion_tokens: int = 512,
    pricing: Pricing | None = None,
) -> MessageOutcome:
    """Answer a user's message with cited passages, paid from the tenant's token quota.

    The question and the gate's verdict commit together; a blocked or pending question stops
    there. Raises ``SessionNotFound``/``SessionClosed`` (nothing kept), ``TokenQuotaExceeded``
    (nothing reaches the provider) and the gateway's ``LlmUnavailable``/``LlmProviderError``
    (the reservation is released, the question marked failed)."""
    subject = MessageSubject(
        tenant_id=tenant_id,
        user_id=user_id,
        session_id=session_id,
        content=content,
        message_id=uuid4(),
        estimated_tokens=estimate_tokens(content) + max_completion_tokens,
    )
    with uow() as work:
        # the session is checked (and locked) by the question's own insert, which commits in
        # the same round trip: on a missing or closed session it fails, and nothing the gate
        # wrote before it is kept
        verdict = work.gate.authorize(subject)
        try:
            question = work.commit_question(
                message_id=subject.message_id,
                session_id=session_id,
                user_id=user_id,
                content=content,
                status=_QUESTION_STATUS[verdict.outcome],
                approval_request_id=verdict.approval_request_id,
                error_code="policy_blocked" if verdict.outcome == "blocked" else None,
            )
        except QuestionRefused as refused:
            if refused.session_closed:
                raise SessionClosed("the chat session is closed") from None
            raise SessionNotFound("chat session not found") from None
    return _answer(
        uow,
        question,
        verdict,
        Answering(retriever, llm, model, k, max_completion_tokens, pricing or Pricing()),
        user_id=user_id,
    )


def resume_message(
    uow: Callable[[], ChatUow],
    *,
    retriever: Retriever,
    llm: Llm,
    session_id: UUID,
    message_id: UUID,
    tenant_id: UUID,
    user_id: UUID,
    model: str,
    k: int = 5,
    max_completion_tokens: int = 512,
    pricing: Pricing | None = None,
) -> MessageOutcome:
    """Ask the gate again about a question that waited for approval: approved, it is answered;
    rejected, it is blocked; still undecided, it stays pending."""
    with uow() as work:
        session = work.chat.get_session(session_id)
        question = work.chat.get_message(message_id, for_update=True)
        if (
            session is None
            or session.user_id != user_id
            or question is None
            or question.session_id != session_id
            or question.role != "user"
        ):
            raise MessageNotFound("chat message not found")
        if question.status != "pending" or question.approval_request_id is None:
            raise MessageNotPending("the message is not waiting for approval")
        subject = MessageSubject(
            tenant_id=tenant_id,
            user_id=user_id,
            session_id=session_id,
            content=question.content,
            message_id=question.id,
            estimated_tokens=estimate_tokens(question.content) + max_completion_tokens,
        )
        verdict = work.gate.authorize(subject)
        if verdict.outcome != "pending":
            status = _QUESTION_STATUS[verdict.outcome]
            error_code = "policy_blocked" if verdict.outcome == "blocked" else None
            # the row is locked, and the transition is conditional besides: of two concurrent
            # resumes, the second finds the question no longer pending
            if not work.chat.set_message_status(
                question.id, status, error_code=error_code, only_from="pending"
            ):
                raise MessageNotPending("the message is not waiting for approval")
            question = replace(question, status=status)
        work.commit()
    return _answer(
        uow,
        question,
        verdict,
        Answering(retriever, llm, model, k, max_completion_tokens, pricing or Pricing()),
        user_id=user_id,
    )


def _refuse_blocked(question: Message, verdict: GateVerdict) -> None:
    """A blocked question is kept (status ``blocked``) and refused with the verdict."""
    if verdict.outcome == "blocked":
        raise ActionBlocked(
            f"blocked by the tenant's policies: {verdict.reason}",
            details=[
                {
                    "message_id": str(question.id),
                    "evaluation_id": str(verdict.evaluation_id) if verdict.evaluation_id else None,
                }
            ],
        )


def _answer(
    uow: Callable[[], ChatUow],
    question: Message,
    verdict: GateVerdict,
    answering: Answering,
    *,
    user_id: UUID,
) -> MessageOutcome:
    """What follows the gate's verdict on a stored question: blocked, it is refused; pending,
    it waits; allowed, it is answered: retrieve -> reserve (committed) -> the model with no
    transaction open -> settle and store the answer with its citations and usage, rechecking
    the approval the verdict may rest on. The question comes back as it now stands."""
    _refuse_blocked(question, verdict)
    if verdict.outcome != "allow":
        return MessageOutcome(question=question, answer=None, verdict=verdict)
    try:
        chunks, turns, reservation = _retrieve_and_reserve(uow, question, answering, user_id)
    except Exception as error:
        _give_back(uow, question, error)
        if isinstance(error, TokenQuotaExceeded):
            # the quota renews with the month: that is when a retry can succeed
            raise TokenQuotaExceeded(
                error.message, details=error.details, retry_after_s=_until_next_month()
            ) from None
        raise
    try:
        completion = answering.llm.complete(turns, max_tokens=answering.max_completion_tokens)
    except Exception as error:
        with uow() as work:
            work.quotas.release(reservation.id)
            work.chat.set_message_status(
                question.id, "failed", error_code=getattr(error, "code", "llm_error")
            )
            work.commit()
        # what the client sees of a provider failure, once the tokens are given back
        if isinstance(error, LlmUnavailable):
            raise LlmUnavailable(error.message) from error
        if isinstance(error, LlmProviderError):
            raise LlmProviderError(error.message) from error
        raise
    if not completion.model:
        completion = replace(completion, model=answering.model)
    draft = AnswerDraft(
        answer_id=uuid4(),
        question=question,
        completion=completion,
        chunks=chunks,
        user_id=user_id,
        cost_estimate=answering.pricing.cost(completion),
        reservation_id=reservation.id,
    )
    with uow() as work:
        work.gate.recheck(verdict)
        answer = work.commit_answer(draft, answered_event(draft))
    return MessageOutcome(
        question=replace(question, status="answered"),
        answer=replace(answer, citations=_citations(chunks)),
        verdict=verdict,
    )


def answered_event(draft: AnswerDraft) -> EventDraft:
    """The ``chat_message.answered`` event an answer is recorded with (its audit row's too)."""
    return EventDraft(
        "chat_message.answered",
        aggregate_type="chat_message",
        aggregate_id=str(draft.answer_id),
        payload={
            "answer_id": draft.answer_id,
            "session_id": draft.question.session_id,
            "question_id": draft.question.id,
            "model": draft.completion.model,
            "prompt_tokens": draft.completion.prompt_tokens,
            "completion_tokens": draft.completion.completion_tokens,
            "citations": len(draft.chunks),
        },
    )


def _retrieve_and_reserve(
    uow: Callable[[], ChatUow], question: Message, answering: Answering, user_id: UUID
) -> tuple[list[RetrievedChunk], list[ChatTurn], Reservation]:
    """The passages for the question and the tokens its prompt and answer may take, reserved
    and committed in one transaction (the embedding is asked for before it opens), the
    reservation sent with the COMMIT.

    The commit does not wait for the WAL flush: what the quota needs is that other requests
    see the reservation before the model is called, and they do the moment it commits. Its
    durability comes with the next transaction's flush (WAL is flushed in order): the
    settlement's, or the release's when the model fails; a database crash in between loses the
    reservation with the question's answer, as the sweeper would release it."""
    query = answering.retriever.embed(question.content)
    searching = uow().searching(
        text=question.content, embedding=query.values, model=query.model, k=answering.k
    )
    with searching as work:
        chunks = work.found
        turns = build_prompt(question.content, chunks)
        tokens = sum(estimate_tokens(t.content) for t in turns) + answering.max_completion_tokens
        reservation = work.commit_reservation(tokens, user_id=user_id)
    if reservation is None:
        # the month's first call opens its counter; or the quota is exhausted, and this raises
        with uow() as work:
            reservation = work.quotas.reserve(tokens, user_id=user_id)
            work.commit_unflushed()
    return chunks, turns, reservation


def _give_back(uow: Callable[[], ChatUow], question: Message, error: Exception) -> None:
    """A question that could not reach the model: a resumed one waits again (its approval still
    holds; it can be resumed when the quota renews), a new one failed."""
    with uow() as work:
        if question.approval_request_id is not None:
            work.chat.set_message_status(question.id, "pending", only_from="answering")
        else:
            code = getattr(error, "code", "retrieval_error")
            work.chat.set_message_status(
                question.id, "failed", error_code=str(code), only_from="answering"
            )
        work.commit()


def _until_next_month(now: datetime | None = None) -> int:
    """Seconds until the next calendar month (UTC), when a new quota period opens."""
    now = now or datetime.now(UTC)
    first = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return max(int((first - now).total_seconds()), 1)


def _citations(chunks: Sequence[RetrievedChunk]) -> tuple[Citation, ...]:
    return tuple(
        Citation(
            rank=rank,
            score=chunk.score,
            chunk_id=chunk.chunk_id,
            document_id=chunk.document_id,
            document_title=chunk.document_title,
        )
        for rank, chunk in enumerate(chunks, start=1)
    )
