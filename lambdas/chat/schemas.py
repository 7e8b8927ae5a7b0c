"""The chat routes' request and response bodies (pydantic), built from the domain values."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lambdas.chat.extraction import CONTENT_TYPES
from lambdas.chat.models import Citation, Document, Message, Session, UsageRow

MAX_MESSAGE_CHARS = 8_000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSessionRequest(_Body):
    title: str = Field(default="", max_length=200)


class SessionResponse(BaseModel):
    id: UUID
    user_id: UUID
    title: str
    status: Literal["open", "closed"]
    created_at: datetime
    closed_at: datetime | None

    @classmethod
    def of(cls, session: Session) -> SessionResponse:
        return cls(
            id=session.id,
            user_id=session.user_id,
            title=session.title,
            status=session.status,
            created_at=session.created_at,
            closed_at=session.closed_at,
        )


class SessionPage(BaseModel):
    items: list[SessionResponse]
    next_cursor: str | None


def _has_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain text, not only whitespace")
    return value


class SendMessageRequest(_Body):
    content: str = Field(
        min_length=1,
        max_length=MAX_MESSAGE_CHARS,
        description="The question; at least one character that is not whitespace.",
    )

    _content_has_text = field_validator("content")(_has_text)


class CitationResponse(BaseModel):
    rank: int
    score: float
    chunk_id: UUID | None
    document_id: UUID | None
    document_title: str | None

    @classmethod
    def of(cls, citation: Citation) -> CitationResponse:
        return cls(
            rank=citation.rank,
            score=citation.score,
            chunk_id=citation.chunk_id,
            document_id=citation.document_id,
            document_title=citation.document_title,
        )


class MessageResponse(BaseModel):
    id: UUID
    session_id: UUID
    role: Literal["user", "assistant"]
    content: str
    status: Literal["pending", "answering", "blocked", "answered", "failed"]
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    approval_request_id: UUID | None
    reply_to: UUID | None
    created_at: datetime
    citations: list[CitationResponse]

    @classmethod
    def of(cls, message: Message) -> MessageResponse:
        return cls(
            id=message.id,
            session_id=message.session_id,
            role=message.role,
            content=message.content,
            status=message.status,
            model=message.model,
            prompt_tokens=message.prompt_tokens,
            completion_tokens=message.completion_tokens,
            approval_request_id=message.approval_request_id,
            reply_to=message.reply_to,
            created_at=message.created_at,
            citations=[CitationResponse.of(c) for c in message.citations],
        )


class VerdictResponse(BaseModel):
    """The gate's verdict on the question (``reason`` names the deciding rule, never content)."""

    outcome: Literal["allow", "blocked", "pending"]
    reason: str | None
    approval_request_id: UUID | None
    evaluation_id: UUID | None


class MessageExchange(BaseModel):
    """A question, the gate's verdict on it, and the answer when it was allowed."""

    question: MessageResponse
    verdict: VerdictResponse
    answer: MessageResponse | None


class HistoryResponse(BaseModel):
    session: SessionResponse
    messages: list[MessageResponse]


class FeedbackRequest(_Body):
    rating: int = Field(ge=1, le=5, description="1 (useless) to 5 (excellent)")
    comment: str | None = Field(default=None, max_length=2000)


class FeedbackResponse(BaseModel):
    id: UUID
    message_id: UUID
    rating: int


class UsageRowResponse(BaseModel):
    day: date
    user_id: UUID | None
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_estimate: Decimal

    @classmethod
    def of(cls, row: UsageRow) -> UsageRowResponse:
        return cls(
            day=row.day,
            user_id=row.user_id,
            model=row.model,
            calls=row.calls,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            cost_estimate=row.cost_estimate,
        )


class QuotaResponse(BaseModel):
    period_start: date
    token_limit: int
    used: int
    reserved: int
    available: int


class UsageResponse(BaseModel):
    since: date
    until: date
    rows: list[UsageRowResponse]
    quota: QuotaResponse | None


class CreateDocumentRequest(_Body):
    title: str = Field(min_length=1, max_length=500)
    # a name, not a path; its extension (any case) one of the formats extraction reads
    filename: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^/\\\x00-\x1f]+$",
        description=(
            "A file name, not a path, ending (in any case) in one of: "
            + ", ".join(sorted(CONTENT_TYPES))
            + "."
        ),
    )

    _title_has_text = field_validator("title")(_has_text)

    @field_validator("filename")
    @classmethod
    def _supported(cls, filename: str) -> str:
        suffix = PurePosixPath(filename).suffix.lower()
        if suffix not in CONTENT_TYPES:
            accepted = ", ".join(sorted(CONTENT_TYPES))
            raise ValueError(f"unsupported file type {suffix or '(none)'!r}: use {accepted}")
        return filename


class PresignedUpload(BaseModel):
    """An HTML-form style S3 upload: POST ``fields`` and then the file (as ``file``) to
    ``url`` before ``expires_at``."""

    url: str
    fields: dict[str, str]
    expires_at: datetime
    max_bytes: int


class DocumentUploadResponse(BaseModel):
    document_id: UUID
    key: str
    upload: PresignedUpload


class DocumentResponse(BaseModel):
    id: UUID
    scope: Literal["tenant", "global"]
    title: str
    status: Literal["pending", "processing", "ready", "failed"]
    error: str | None
    chunk_count: int
    created_at: datetime

    @classmethod
    def of(cls, document: Document) -> DocumentResponse:
        return cls(
            id=document.id,
            scope="global" if document.tenant_id is None else "tenant",
            title=document.title,
            status=document.status,
            error=document.error,
            chunk_count=document.chunk_count,
            created_at=document.created_at,
        )


class DocumentPage(BaseModel):
    items: list[DocumentResponse]
    next_cursor: str | None
