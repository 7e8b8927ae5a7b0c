"""The chat routes' unit of work, and the question's embedding for the knowledge search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import LiteralString, Protocol, Self
from uuid import UUID

from lambdas.chat.chat_repository import ChatRepository
from lambdas.chat.knowledge_repository import KnowledgeRepository, SearchQuery, retrieved
from lambdas.chat.models import AnswerDraft, Message, MessageStatus, Reservation, RetrievedChunk
from lambdas.chat.policy_gate import PolicyGate
from lambdas.chat.quota_repository import UNFLUSHED, TokenQuotaRepository
from lambdas.chat.service import QueryVector
from lambdas.shared.db import OpeningQuery, UnitOfWork
from lambdas.shared.scope import EventDraft, RequestScope

_UNFLUSHED: LiteralString = "SELECT " + UNFLUSHED


class ChatUnitOfWork(UnitOfWork):
    """One tenant's chat, quota and knowledge repositories and the gate, in one transaction
    (which may open with the question's knowledge search: ``searching``)."""

    chat: ChatRepository
    quotas: TokenQuotaRepository
    knowledge: KnowledgeRepository
    gate: PolicyGate
    _search: SearchQuery | None = None

    def __init__(
        self, scope: RequestScope, tenant_id: UUID, *, default_monthly_tokens: int
    ) -> None:
        super().__init__(scope, tenant_id)
        self._tenant = tenant_id
        self._default_monthly_tokens = default_monthly_tokens

    def _on_enter(self) -> None:
        self.chat = ChatRepository(self.conn, self._tenant)
        self.quotas = TokenQuotaRepository(
            self.conn, self._tenant, default_limit=self._default_monthly_tokens
        )
        self.knowledge = KnowledgeRepository(self.conn, self._tenant)
        self.gate = PolicyGate(self)

    def searching(self, *, text: str, embedding: Sequence[float], model: str, k: int) -> Self:
        """Send the question's knowledge search with BEGIN when the unit is entered: in the
        round trip that opens the transaction and scopes it to the tenant, instead of one of
        its own. Its chunks: ``found``."""
        self._search = SearchQuery(text=text, embedding=embedding, model=model, k=k)
        return self

    def _opening(self) -> OpeningQuery | None:
        return self._search.statement() if self._search else None

    @property
    def found(self) -> list[RetrievedChunk]:
        """The chunks of the search sent with BEGIN, best first (read once)."""
        return retrieved(self.opened)

    def commit_unflushed(self) -> None:
        """Commit without waiting for the WAL flush (``synchronous_commit`` off for this
        transaction alone), the setting sent with the COMMIT in its one round trip."""
        self.commit_with(_UNFLUSHED, ())

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
        """The question stored in its session and the transaction committed, in one round trip;
        ``QuestionRefused`` and nothing committed when the session is not the caller's or not
        open."""
        return self.chat.add_question(
            message_id=message_id,
            session_id=session_id,
            user_id=user_id,
            content=content,
            status=status,
            approval_request_id=approval_request_id,
            error_code=error_code,
            send=self.commit_with,
        )

    def commit_reservation(self, tokens: int, *, user_id: UUID | None) -> Reservation | None:
        """``tokens`` reserved and the transaction committed without waiting for the WAL flush,
        in one round trip; None when nothing was reserved (see
        ``TokenQuotaRepository.reserve_in_open_period``; nothing was written then)."""
        return self.quotas.reserve_in_open_period(tokens, user_id=user_id, send=self.commit_with)

    def commit_answer(self, answer: AnswerDraft, event: EventDraft) -> Message:
        """The reservation settled, the answer stored, ``event`` recorded by the request's actor
        (its audit row and its outbox event, as ``record`` writes them) and the transaction
        committed: one round trip."""
        scope = self.scope
        return self.chat.settle_and_store_answer(
            answer,
            event,
            actor_id=scope.actor_id,
            actor_type=scope.actor_type,
            request_id=scope.request_id,
            send=self.commit_with,
        )


class Embedder(Protocol):
    @property
    def embedding_model(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class QuestionEmbedder:
    """The service's ``Retriever``: a question's embedding from the provider. The search runs
    in the service's transaction (``ChatUnitOfWork.knowledge``), with the token reservation."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    def embed(self, question: str) -> QueryVector:
        [values] = self._embedder.embed([question])
        return QueryVector(model=self._embedder.embedding_model, values=values)
