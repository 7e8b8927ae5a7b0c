"""Chat's domain errors (mapped to HTTP by lambdas.shared.errors)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Literal
from uuid import UUID

from lambdas.shared.errors import (
    AppError,
    Conflict,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
)
from lambdas.shared.errors import UnsupportedMediaType as _UnsupportedMediaType

DuplicateReason = Literal["same_source", "same_file", "similar_title"]

_REASONS: dict[DuplicateReason, str] = {
    "same_source": "a document with the same source already exists",
    "same_file": "a document with the same file contents (SHA-256) already exists",
    "similar_title": "a document with a very similar title already exists",
}


class DuplicateDocument(Conflict):
    code = "duplicate_document"

    def __init__(self, reason: DuplicateReason, existing_id: UUID) -> None:
        super().__init__(
            _REASONS[reason], details=[{"reason": reason, "document_id": str(existing_id)}]
        )
        self.reason: DuplicateReason = reason
        self.existing_id = existing_id


class SessionNotFound(NotFound):
    code = "chat_session_not_found"


class SessionClosed(Conflict):
    code = "chat_session_closed"


class QuestionRefused(Exception):
    """The store refused a question (the port's error; the service answers ``SessionNotFound``
    or ``SessionClosed``): its session is not the caller's, or is closed."""

    def __init__(self, *, session_closed: bool) -> None:
        super().__init__("the chat session is closed" if session_closed else "no such session")
        self.session_closed = session_closed


class TokenQuotaExceeded(TooManyRequests):
    code = "token_quota_exceeded"


class UnsupportedDocument(_UnsupportedMediaType):
    code = "unsupported_document"


class DocumentUnreadable(AppError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "document_unreadable"


class LlmUnavailable(ServiceUnavailable):
    """The provider could not be reached, timed out or kept refusing (429) after retries."""

    code = "llm_unavailable"


class LlmProviderError(AppError):
    """The provider answered with an error or a response we cannot use."""

    status = HTTPStatus.BAD_GATEWAY
    code = "llm_provider_error"
