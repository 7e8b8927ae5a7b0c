"""Ingestion of one document: extract, chunk, embed, and store it all or nothing.

1. A short transaction registers the document as ``processing`` (after the duplicate checks),
   so its status is visible while the rest runs.
2. Text extraction, chunking and the embedding calls run with no transaction open.
3. One transaction stores every chunk and embedding and marks the document ``ready``; if
   anything fails, nothing of it is stored and the document is marked ``failed`` with a reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol
from uuid import UUID

from lambdas.chat.constants import CHUNK_MAX_TOKENS, CHUNK_OVERLAP_TOKENS
from lambdas.chat.errors import DocumentUnreadable, LlmUnavailable
from lambdas.chat.extraction import chunk_text, extract_text
from lambdas.chat.knowledge_repository import KnowledgeRepository
from lambdas.chat.models import Document, DocumentDraft, EmbeddedChunk
from lambdas.shared.db import UnitOfWork
from lambdas.shared.errors import AppError
from lambdas.shared.observability import logger


class Embedder(Protocol):
    @property
    def embedding_model(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class KnowledgeUow(AbstractContextManager["KnowledgeUow"], Protocol):
    @property
    def knowledge(self) -> KnowledgeRepository: ...

    def commit(self) -> None: ...


# Opens a unit of work scoped to a tenant (None: the global scope, operators only).
KnowledgeUowFactory = Callable[[UUID | None], KnowledgeUow]


class KnowledgeUnitOfWork(UnitOfWork):
    """The ingestion Lambdas' unit of work with the knowledge repository of its tenant."""

    knowledge: KnowledgeRepository

    def _on_enter(self) -> None:
        self.knowledge = KnowledgeRepository(self.conn, self.tenant_id)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class IngestionPipeline:
    def __init__(
        self,
        uow_factory: KnowledgeUowFactory,
        embedder: Embedder,
        *,
        max_tokens: int = CHUNK_MAX_TOKENS,
        overlap_tokens: int = CHUNK_OVERLAP_TOKENS,
        defer_indexing: bool = False,
    ) -> None:
        """``defer_indexing``: store the vectors unindexed (searchable at once, exactly) and leave
        their insertion into the HNSW graph to the ``index_chat_embeddings`` job."""
        self._uow = uow_factory
        self._embedder = embedder
        self._max_tokens = max_tokens
        self._overlap_tokens = overlap_tokens
        self._defer_indexing = defer_indexing

    def register(self, draft: DocumentDraft) -> UUID:
        """Step 1: the document as ``processing``. A document of the same source or contents
        that never became ready (failed, or a crashed run) is restarted instead; any other
        duplicate raises ``DuplicateDocument``."""
        with self._uow(draft.tenant_id) as uow:
            found = uow.knowledge.find_duplicate(
                title=draft.title, source=draft.source, file_sha256=draft.file_sha256
            )
            if found and found[0] != "similar_title" and found[2] != "ready":
                uow.knowledge.restart_failed(found[1])
                document_id = found[1]
            else:
                document_id = uow.knowledge.create_document(draft)
            uow.commit()
        return document_id

    def prepare(self, data: bytes, content_type: str) -> list[EmbeddedChunk]:
        """Step 2: text, chunks and their embeddings (no transaction open)."""
        text = extract_text(data, content_type)
        chunks = chunk_text(text, max_tokens=self._max_tokens, overlap_tokens=self._overlap_tokens)
        if not chunks:
            raise DocumentUnreadable("the document holds no extractable text")
        vectors = self._embedder.embed([c.content for c in chunks])
        return [EmbeddedChunk(chunk=c, embedding=v) for c, v in zip(chunks, vectors, strict=True)]

    def store(
        self, tenant_id: UUID | None, documents: Sequence[tuple[UUID, Sequence[EmbeddedChunk]]]
    ) -> int:
        """Step 3: the chunks and embeddings of registered documents of one scope, in one
        transaction that marks them ``ready``; returns the number of chunks stored."""
        with self._uow(tenant_id) as uow:
            stored = uow.knowledge.store_chunks(
                documents,
                model=self._embedder.embedding_model,
                indexed=not self._defer_indexing,
            )
            uow.commit()
        return stored

    def ingest(self, draft: DocumentDraft, data: bytes) -> Document:
        """All three steps; returns the document as stored (``ready`` or ``failed``). A
        duplicate raises ``DuplicateDocument`` before anything is stored."""
        document_id = self.register(draft)
        try:
            self.store(draft.tenant_id, [(document_id, self.prepare(data, draft.content_type))])
        except Exception as error:
            reason = error.message if isinstance(error, AppError) else type(error).__name__
            logger.warning(
                "document ingestion failed",
                extra={"document_id": str(document_id), "reason": reason},
            )
            with self._uow(draft.tenant_id) as uow:
                uow.knowledge.mark_failed(document_id, reason)
                uow.commit()
            if isinstance(error, LlmUnavailable):
                raise  # transient: a retried event restarts the failed document
        return self._document(draft.tenant_id, document_id)

    def _document(self, tenant_id: UUID | None, document_id: UUID) -> Document:
        with self._uow(tenant_id) as uow:
            document = uow.knowledge.get(document_id)
            uow.commit()
        if document is None:
            raise LookupError(f"document {document_id} vanished during ingestion")
        return document
