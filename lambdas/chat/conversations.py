"""Chat sessions, their history, feedback on answers and the usage report.

A session belongs to the user who opened it: another member of the tenant gets 404, as a
caller from another tenant does.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date, timedelta
from typing import Protocol
from uuid import UUID

from lambdas.chat.chat_repository import ChatRepository
from lambdas.chat.errors import SessionNotFound
from lambdas.chat.models import TokenUsage
from lambdas.chat.quota_repository import TokenQuotaRepository
from lambdas.chat.schemas import (
    FeedbackResponse,
    HistoryResponse,
    MessageResponse,
    QuotaResponse,
    SessionPage,
    SessionResponse,
    UsageResponse,
    UsageRowResponse,
)
from lambdas.shared import cursors
from lambdas.shared.errors import NotFound, ValidationFailed
from lambdas.shared.scope import ChangeRecorder

MAX_USAGE_DAYS = 92


class AnswerNotFound(NotFound):
    code = "chat_answer_not_found"


class InvalidUsageRange(ValidationFailed):
    code = "invalid_usage_range"


class ConversationUow(ChangeRecorder, AbstractContextManager["ConversationUow"], Protocol):
    @property
    def chat(self) -> ChatRepository: ...

    @property
    def quotas(self) -> TokenQuotaRepository: ...

    def commit(self) -> None: ...


ConversationUowFactory = Callable[[], ConversationUow]


def _valid_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


def create_session(uow: ConversationUowFactory, *, user_id: UUID, title: str) -> SessionResponse:
    """Open a session for ``user_id``; recorded as ``chat_session.created``."""
    with uow() as work:
        session = work.chat.create_session(user_id, title.strip())
        work.record(
            "chat_session.created",
            aggregate_type="chat_session",
            aggregate_id=str(session.id),
            payload={"session_id": session.id},
        )
        work.commit()
    return SessionResponse.of(session)


def list_sessions(
    uow: ConversationUowFactory, *, user_id: UUID, cursor: str | None, limit: int
) -> SessionPage:
    """The caller's sessions, newest first."""
    before = UUID(cursors.decode_cursor(cursor, valid=_valid_uuid)) if cursor else None
    with uow() as work:
        sessions = work.chat.list_sessions(user_id, limit=limit + 1, before=before)
        work.commit()
    has_more = len(sessions) > limit
    items = [SessionResponse.of(s) for s in sessions[:limit]]
    return SessionPage(
        items=items,
        next_cursor=cursors.encode_cursor(str(items[-1].id)) if has_more else None,
    )


def get_session(uow: ConversationUowFactory, session_id: UUID, *, user_id: UUID) -> HistoryResponse:
    """A session of the caller's and its messages, each answer with its citations."""
    with uow() as work:
        session = work.chat.get_session(session_id)
        if session is None or session.user_id != user_id:
            raise SessionNotFound("chat session not found")
        messages = work.chat.history(session_id)
        work.commit()
    return HistoryResponse(
        session=SessionResponse.of(session),
        messages=[MessageResponse.of(m) for m in messages],
    )


def close_session(
    uow: ConversationUowFactory, session_id: UUID, *, user_id: UUID
) -> SessionResponse:
    """Close a session (it takes no more messages); closing twice keeps the first time."""
    with uow() as work:
        session = work.chat.get_session(session_id, for_update=True)
        if session is None or session.user_id != user_id:
            raise SessionNotFound("chat session not found")
        closed = work.chat.close_session(session_id)
        if closed is None:
            raise SessionNotFound("chat session not found")
        work.record(
            "chat_session.closed",
            aggregate_type="chat_session",
            aggregate_id=str(session_id),
            payload={"session_id": session_id},
        )
        work.commit()
    return SessionResponse.of(closed)


def give_feedback(
    uow: ConversationUowFactory,
    session_id: UUID,
    message_id: UUID,
    *,
    user_id: UUID,
    rating: int,
    comment: str | None,
) -> FeedbackResponse:
    """Rate an answer of one of the caller's sessions (a second rating replaces the first)."""
    with uow() as work:
        session = work.chat.get_session(session_id)
        message = work.chat.get_message(message_id)
        if (
            session is None
            or session.user_id != user_id
            or message is None
            or message.session_id != session_id
        ):
            raise AnswerNotFound("no such answer in the session")
        feedback_id = work.chat.add_feedback(
            message_id, user_id=user_id, rating=rating, comment=comment
        )
        if feedback_id is None:
            raise AnswerNotFound("no such answer in the session")
        work.record(
            "chat_message.rated",
            aggregate_type="chat_message",
            aggregate_id=str(message_id),
            payload={"answer_id": message_id, "feedback_id": feedback_id, "rating": rating},
        )
        work.commit()
    return FeedbackResponse(id=feedback_id, message_id=message_id, rating=rating)


def usage(
    uow: ConversationUowFactory, *, since: date | None, until: date | None, today: date
) -> UsageResponse:
    """Calls, tokens and estimated cost per day, user and model in ``[since, until)`` (the
    last 30 days by default), and the current month's quota."""
    end = until or today + timedelta(days=1)
    start = since or end - timedelta(days=30)
    if start >= end or (end - start).days > MAX_USAGE_DAYS:
        raise InvalidUsageRange(f"since must be before until, at most {MAX_USAGE_DAYS} days apart")
    with uow() as work:
        rows = work.chat.usage(since=start, until=end)
        quota = work.quotas.current()
        work.commit()
    return UsageResponse(
        since=start,
        until=end,
        rows=[UsageRowResponse.of(row) for row in rows],
        quota=_quota(quota) if quota else None,
    )


def _quota(usage: TokenUsage) -> QuotaResponse:
    return QuotaResponse(
        period_start=usage.period_start,
        token_limit=usage.token_limit,
        used=usage.used,
        reserved=usage.reserved,
        available=usage.available,
    )
