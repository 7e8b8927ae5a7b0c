"""Chat use cases over injected ports: the policy gate, the retriever, the LLM and a unit of
work holding the chat and quota repositories. The HTTP routes (next) only parse and call these.

A message: gate -> reserve tokens (committed) -> retrieve -> LLM with no transaction open ->
settle -> persist the answer, its citations and the usage, in one transaction. A blocked or
pending message never reaches the provider.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol
from uuid import UUID

from lambdas.chat.models import (
    ChatTurn,
    Completion,
    Message,
    MessageRole,
    MessageStatus,
    Reservation,
    RetrievedChunk,
    Session,
)
from lambdas.chat.text import estimate_tokens
from lambdas.shared.errors import Conflict, NotFound

SYSTEM_PROMPT = (
    "Você é o assistente da plataforma Alquimista. Responda em português, apenas com base nos "
    "trechos numerados abaixo, citando-os como [n]. Se a resposta não estiver nos trechos, "
    "diga que não a encontrou."
)


class SessionNotFound(NotFound):
    code = "chat_session_not_found"


class SessionClosed(Conflict):
    code = "chat_session_closed"


@dataclass(frozen=True)
class GateVerdict:
    outcome: Literal["allow", "blocked", "pending"]
    reason: str | None = None
    approval_request_id: UUID | None = None


@dataclass(frozen=True)
class MessageSubject:
    """What the gate evaluates: who sends what, where."""

    tenant_id: UUID
    user_id: UUID
    session_id: UUID
    content: str


class Gate(Protocol):
    def authorize(self, subject: MessageSubject) -> GateVerdict: ...


class Retriever(Protocol):
    def retrieve(self, question: str, *, k: int) -> list[RetrievedChunk]: ...


class Llm(Protocol):
    def complete(self, turns: Sequence[ChatTurn], *, max_tokens: int) -> Completion: ...


class ChatStore(Protocol):
    def get_session(self, session_id: UUID, *, for_update: bool = False) -> Session | None: ...

    def add_message(
        self,
        *,
        session_id: UUID,
        role: MessageRole,
        content: str,
        status: MessageStatus,
        user_id: UUID | None = None,
        reply_to: UUID | None = None,
        model: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        approval_request_id: UUID | None = None,
        error_code: str | None = None,
    ) -> Message: ...

    def set_message_status(
        self, message_id: UUID, status: MessageStatus, *, error_code: str | None = None
    ) -> bool: ...

    def add_references(self, message_id: UUID, chunks: Sequence[RetrievedChunk]) -> None: ...

    def log_usage(
        self,
        *,
        user_id: UUID | None,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cost_estimate: Decimal,
        reservation_id: UUID | None = None,
        message_id: UUID | None = None,
    ) -> None: ...


class QuotaStore(Protocol):
    def reserve(self, tokens: int, *, user_id: UUID | None) -> Reservation: ...

    def settle(self, reservation_id: UUID, actual_tokens: int) -> bool: ...

    def release(self, reservation_id: UUID) -> bool: ...


class ChatUow(AbstractContextManager["ChatUow"], Protocol):
    @property
    def chat(self) -> ChatStore: ...

    @property
    def quotas(self) -> QuotaStore: ...

    def commit(self) -> None: ...


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
    gate: Gate,
    retriever: Retriever,
    llm: Llm,
    subject: MessageSubject,
    model: str,
    k: int = 5,
    max_completion_tokens: int = 512,
    pricing: Pricing | None = None,
) -> MessageOutcome:
    """Answer a user's message with cited passages, paid from the tenant's token quota.

    Raises ``TokenQuotaExceeded`` (nothing reaches the provider) and the gateway's
    ``LlmUnavailable``/``LlmProviderError`` (the reservation is released, the question marked
    failed)."""
    verdict = gate.authorize(subject)
    with uow() as work:
        session = work.chat.get_session(subject.session_id, for_update=True)
        if session is None:
            raise SessionNotFound("chat session not found")
        if session.status != "open":
            raise SessionClosed("the chat session is closed")
        status: MessageStatus = "pending" if verdict.outcome != "blocked" else "blocked"
        question = work.chat.add_message(
            session_id=subject.session_id,
            role="user",
            content=subject.content,
            status=status,
            user_id=subject.user_id,
            approval_request_id=verdict.approval_request_id,
            error_code="policy_blocked" if verdict.outcome == "blocked" else None,
        )
        work.commit()
    if verdict.outcome != "allow":
        return MessageOutcome(question=question, answer=None, verdict=verdict)
    answer = answer_question(
        uow,
        retriever=retriever,
        llm=llm,
        question=question,
        user_id=subject.user_id,
        model=model,
        k=k,
        max_completion_tokens=max_completion_tokens,
        pricing=pricing or Pricing(),
    )
    return MessageOutcome(question=question, answer=answer, verdict=verdict)


def answer_question(
    uow: Callable[[], ChatUow],
    *,
    retriever: Retriever,
    llm: Llm,
    question: Message,
    user_id: UUID,
    model: str,
    k: int,
    max_completion_tokens: int,
    pricing: Pricing,
) -> Message:
    """Answer an allowed question (also the way a pending one is resumed once approved)."""
    chunks = retriever.retrieve(question.content, k=k)
    turns = build_prompt(question.content, chunks)
    estimate = sum(estimate_tokens(t.content) for t in turns) + max_completion_tokens
    with uow() as work:
        reservation = work.quotas.reserve(estimate, user_id=user_id)
        work.commit()
    try:
        completion = llm.complete(turns, max_tokens=max_completion_tokens)
    except Exception as error:
        with uow() as work:
            work.quotas.release(reservation.id)
            work.chat.set_message_status(
                question.id, "failed", error_code=getattr(error, "code", "llm_error")
            )
            work.commit()
        raise
    with uow() as work:
        work.quotas.settle(reservation.id, completion.total_tokens)
        answer = work.chat.add_message(
            session_id=question.session_id,
            role="assistant",
            content=completion.text,
            status="answered",
            reply_to=question.id,
            model=completion.model or model,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
        )
        work.chat.add_references(answer.id, chunks)
        work.chat.set_message_status(question.id, "answered")
        work.chat.log_usage(
            user_id=user_id,
            model=completion.model or model,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            cost_estimate=pricing.cost(completion),
            reservation_id=reservation.id,
            message_id=answer.id,
        )
        work.commit()
    return answer
