"""The chat routes' unit of work, and the retriever over the knowledge base."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol
from uuid import UUID

from lambdas.chat.chat_repository import ChatRepository
from lambdas.chat.knowledge_repository import KnowledgeRepository
from lambdas.chat.models import RetrievedChunk
from lambdas.chat.policy_gate import PolicyGate
from lambdas.chat.quota_repository import TokenQuotaRepository
from lambdas.shared.db import UnitOfWork
from lambdas.shared.scope import RequestScope


class ChatUnitOfWork(UnitOfWork):
    """One tenant's chat, quota and knowledge repositories and the gate, in one transaction."""

    chat: ChatRepository
    quotas: TokenQuotaRepository
    knowledge: KnowledgeRepository
    gate: PolicyGate

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


class QueryEmbedder(Protocol):
    @property
    def embedding_model(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class KnowledgeRetriever:
    """The question's embedding (no transaction open), then the hybrid search of the tenant's
    and the global documents."""

    def __init__(self, uow: Callable[[], ChatUnitOfWork], embedder: QueryEmbedder) -> None:
        self._uow = uow
        self._embedder = embedder

    def retrieve(self, question: str, *, k: int) -> list[RetrievedChunk]:
        [embedding] = self._embedder.embed([question])
        with self._uow() as work:
            chunks = work.knowledge.search(
                text=question, embedding=embedding, model=self._embedder.embedding_model, k=k
            )
            work.commit()
        return chunks
