"""The values chat's repositories, gateway and pipeline exchange."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

DocumentStatus = Literal["pending", "processing", "ready", "failed"]
MessageRole = Literal["user", "assistant"]
MessageStatus = Literal["pending", "answering", "blocked", "answered", "failed"]


@dataclass(frozen=True)
class DocumentDraft:
    """A document about to be stored; ``tenant_id`` None is a global document. ``id`` is the
    upload's id when the document came through ``POST /api/chat/documents``."""

    tenant_id: UUID | None
    title: str
    source: str
    file_sha256: str
    content_type: str = "text/plain"
    s3_key: str | None = None
    created_by: UUID | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    id: UUID | None = None


@dataclass(frozen=True)
class Document:
    id: UUID
    tenant_id: UUID | None
    title: str
    source: str
    file_sha256: str
    status: DocumentStatus
    error: str | None
    chunk_count: int
    created_at: datetime


@dataclass(frozen=True)
class ChunkDraft:
    index: int
    content: str
    token_count: int
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmbeddedChunk:
    chunk: ChunkDraft
    embedding: Sequence[float]


@dataclass(frozen=True)
class RetrievedChunk:
    chunk_id: UUID
    document_id: UUID
    document_title: str
    tenant_id: UUID | None
    index: int
    content: str
    score: float
    semantic_rank: int | None
    lexical_rank: int | None


@dataclass(frozen=True)
class Reservation:
    id: UUID
    tokens: int
    expires_at: datetime


@dataclass(frozen=True)
class TokenUsage:
    period_start: date
    token_limit: int
    used: int
    reserved: int

    @property
    def available(self) -> int:
        return max(self.token_limit - self.used - self.reserved, 0)


@dataclass(frozen=True)
class ChatTurn:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Session:
    id: UUID
    user_id: UUID
    title: str
    status: Literal["open", "closed"]
    created_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True)
class Citation:
    rank: int
    score: float
    chunk_id: UUID | None
    document_id: UUID | None
    document_title: str | None


@dataclass(frozen=True)
class Message:
    id: UUID
    session_id: UUID
    role: MessageRole
    content: str
    status: MessageStatus
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    approval_request_id: UUID | None
    reply_to: UUID | None
    created_at: datetime
    citations: tuple[Citation, ...] = ()


@dataclass(frozen=True)
class AnswerDraft:
    """An answer to store: the model's completion to ``question``, citing ``chunks`` in rank
    order, paid by ``reservation_id``. ``answer_id`` is chosen before it is stored, so that
    its event can name it in the same statement."""

    answer_id: UUID
    question: Message
    completion: Completion
    chunks: Sequence[RetrievedChunk]
    user_id: UUID | None
    cost_estimate: Decimal
    reservation_id: UUID


@dataclass(frozen=True)
class UsageRow:
    day: date
    user_id: UUID | None
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_estimate: Decimal
