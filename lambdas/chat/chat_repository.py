"""Chat sessions, messages with their citations, feedback and the per-call usage log."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any, LiteralString
from uuid import UUID

import psycopg

from lambdas.chat.errors import QuestionRefused
from lambdas.chat.models import (
    AnswerDraft,
    Citation,
    Message,
    MessageStatus,
    Session,
    UsageRow,
)
from lambdas.chat.quota_repository import SETTLE_CTES
from lambdas.chat.rows import one
from lambdas.shared.db import Connection, Cursor
from lambdas.shared.scope import EventDraft

# How a statement is sent: ``Connection.execute``, or ``UnitOfWork.commit_with`` to send it
# with the transaction's COMMIT in one round trip.
Send = Callable[[LiteralString, Mapping[str, Any]], Cursor]

_SESSION_COLUMNS = "id, user_id, title, status, created_at, closed_at"
_MESSAGE_COLUMNS: LiteralString = """
    m.id, m.session_id, m.role, m.content, m.status, m.model, m.prompt_tokens,
    m.completion_tokens, m.approval_request_id, m.reply_to, m.created_at
"""


# Migration 060: the question in its session (the caller's, open, locked until the commit), or
# an error naming why not, so that a COMMIT sent behind it is skipped.
_ADD_QUESTION_SQL: LiteralString = (
    "SELECT"
    + _MESSAGE_COLUMNS
    + """
    FROM chat.add_question_v1(%(id)s, %(tenant)s, %(session)s, %(user)s, %(content)s,
                              %(status)s, %(approval)s, %(error)s) AS m
    """
)

_QUESTION_REFUSALS: dict[str, bool] = {  # constraint -> the session exists but is closed
    "chat_question_session_exists": False,
    "chat_question_session_open": True,
}

# The answer's own writes: its citations, the question answered, the usage row.
_ANSWER_CTES: LiteralString = (
    """
    answer AS (
        INSERT INTO chat.messages AS m
            (id, tenant_id, session_id, reply_to, role, content, status, model,
             prompt_tokens, completion_tokens)
        VALUES (%(answer)s, %(tenant)s, %(session)s, %(question)s, 'assistant', %(content)s,
                'answered', %(model)s, %(prompt)s, %(completion)s)
        RETURNING"""
    + _MESSAGE_COLUMNS
    + """
    ), cited AS (
        INSERT INTO chat.message_references
            (tenant_id, message_id, chunk_id, document_id, rank, score)
        SELECT %(tenant)s, %(answer)s, r.chunk_id, r.document_id, r.rank, r.score
        FROM unnest(%(chunks)s::uuid[], %(documents)s::uuid[], %(scores)s::float8[])
                 WITH ORDINALITY AS r (chunk_id, document_id, score, rank)
    ), asked AS (
        UPDATE chat.messages SET status = 'answered', error_code = NULL
        WHERE tenant_id = %(tenant)s AND id = %(question)s
    ), logged AS (
        INSERT INTO chat.token_usage_log
            (tenant_id, user_id, reservation_id, message_id, model, prompt_tokens,
             completion_tokens, cost_estimate)
        SELECT %(tenant)s, %(user)s, %(reservation)s, a.id, %(model)s, %(prompt)s,
               %(completion)s, %(cost)s
        FROM answer AS a
    )"""
)


@functools.cache
def _settle_and_answer_sql() -> LiteralString:
    """The settlement of the call's reservation (``SETTLE_CTES``), the answer's writes and the
    change recorded (its audit row and outbox event, ``RECORD_QUERY``): one statement. The last
    SELECT reads the record's CTE so that it runs."""
    # the audit chain's module loads with the first answer, as ``UnitOfWork.record`` loads it
    from lambdas.shared.audit import RECORD_QUERY  # noqa: PLC0415

    return (
        "WITH"
        + SETTLE_CTES
        + ","
        + _ANSWER_CTES
        + ", recorded AS ("
        + RECORD_QUERY
        + """)
    SELECT a.*, (SELECT r.seq FROM recorded AS r) AS audit_seq,
           (SELECT r.event_seq FROM recorded AS r) AS outbox_seq
    FROM answer AS a
    """
    )


def _session(row: dict[str, Any]) -> Session:
    return Session(
        id=row["id"],
        user_id=row["user_id"],
        title=row["title"],
        status=row["status"],
        created_at=row["created_at"],
        closed_at=row["closed_at"],
    )


def _message(row: dict[str, Any], citations: Sequence[dict[str, Any]] = ()) -> Message:
    return Message(
        id=row["id"],
        session_id=row["session_id"],
        role=row["role"],
        content=row["content"],
        status=row["status"],
        model=row["model"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        approval_request_id=row["approval_request_id"],
        reply_to=row["reply_to"],
        created_at=row["created_at"],
        citations=tuple(
            Citation(
                rank=c["rank"],
                score=c["score"],
                chunk_id=UUID(c["chunk_id"]) if c["chunk_id"] else None,
                document_id=UUID(c["document_id"]) if c["document_id"] else None,
                document_title=c["document_title"],
            )
            for c in citations
        ),
    )


class ChatRepository:
    """One tenant's sessions and messages; every statement filters by the tenant."""

    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def create_session(self, user_id: UUID, title: str = "") -> Session:
        row = self._conn.execute(
            f"""
            INSERT INTO chat.sessions (tenant_id, user_id, title) VALUES (%s, %s, %s)
            RETURNING {_SESSION_COLUMNS}
            """,
            (self._tenant_id, user_id, title),
        ).fetchone()
        return _session(one(row))

    def get_session(self, session_id: UUID, *, for_update: bool = False) -> Session | None:
        lock = " FOR UPDATE" if for_update else ""
        row = self._conn.execute(
            f"SELECT {_SESSION_COLUMNS} FROM chat.sessions WHERE tenant_id = %s AND id = %s" + lock,
            (self._tenant_id, session_id),
        ).fetchone()
        return _session(row) if row else None

    def list_sessions(
        self, user_id: UUID, *, limit: int, before: UUID | None = None
    ) -> list[Session]:
        """A user's sessions, newest first (keyset pagination on creation time and id)."""
        rows = self._conn.execute(
            f"""
            SELECT {_SESSION_COLUMNS} FROM chat.sessions AS s
            WHERE s.tenant_id = %(tenant)s AND s.user_id = %(user)s
              AND (%(before)s::uuid IS NULL OR (s.created_at, s.id) < (
                    SELECT created_at, id FROM chat.sessions
                    WHERE tenant_id = %(tenant)s AND id = %(before)s))
            ORDER BY s.created_at DESC, s.id DESC
            LIMIT %(limit)s
            """,
            {"tenant": self._tenant_id, "user": user_id, "before": before, "limit": limit},
        ).fetchall()
        return [_session(row) for row in rows]

    def close_session(self, session_id: UUID) -> Session | None:
        row = self._conn.execute(
            f"""
            UPDATE chat.sessions SET status = 'closed', closed_at = coalesce(closed_at, now())
            WHERE tenant_id = %s AND id = %s
            RETURNING {_SESSION_COLUMNS}
            """,
            (self._tenant_id, session_id),
        ).fetchone()
        return _session(row) if row else None

    def add_question(
        self,
        *,
        message_id: UUID,
        session_id: UUID,
        user_id: UUID,
        content: str,
        status: MessageStatus,
        approval_request_id: UUID | None,
        error_code: str | None,
        send: Send | None = None,
    ) -> Message:
        """A user's question in their open session, locked until the transaction ends; raises
        ``QuestionRefused`` when the session is not the caller's or is closed (the statement
        fails: a COMMIT sent behind it by ``send`` is skipped)."""
        params = {
            "id": message_id,
            "tenant": self._tenant_id,
            "session": session_id,
            "user": user_id,
            "content": content,
            "status": status,
            "approval": approval_request_id,
            "error": error_code,
        }
        try:
            row = (send or self._conn.execute)(_ADD_QUESTION_SQL, params).fetchone()
        except psycopg.errors.IntegrityError as error:
            closed = _QUESTION_REFUSALS.get(error.diag.constraint_name or "")
            if closed is None:
                raise
            raise QuestionRefused(session_closed=closed) from None
        return _message(one(row))

    def settle_and_store_answer(
        self,
        answer: AnswerDraft,
        event: EventDraft,
        *,
        actor_id: UUID | None,
        actor_type: str,
        request_id: str | None,
        send: Send | None = None,
    ) -> Message:
        """Settle the call's reservation to the tokens it used and store the model's answer in
        one statement (one round trip): the answer, its citations (``chunks`` in rank order),
        the question marked answered, the call's usage row, and ``event`` recorded by the
        request's actor (its audit row and outbox event, as ``ChangeWriter.record`` writes
        them)."""
        from lambdas.shared.audit import record_params  # noqa: PLC0415  (see above)

        change = record_params(
            event,
            tenant_id=self._tenant_id,
            actor_id=actor_id,
            actor_type=actor_type,
            request_id=request_id,
        )
        completion = answer.completion
        row = (send or self._conn.execute)(
            _settle_and_answer_sql(),
            {
                **change,
                "tenant": self._tenant_id,
                "reservation": answer.reservation_id,
                "total": completion.total_tokens,
                "answer": answer.answer_id,
                "session": answer.question.session_id,
                "question": answer.question.id,
                "user": answer.user_id,
                "content": completion.text,
                "model": completion.model,
                "prompt": completion.prompt_tokens,
                "completion": completion.completion_tokens,
                "chunks": [c.chunk_id for c in answer.chunks],
                "documents": [c.document_id for c in answer.chunks],
                "scores": [c.score for c in answer.chunks],
                "cost": answer.cost_estimate,
            },
        ).fetchone()
        return _message(one(row))

    def get_message(self, message_id: UUID, *, for_update: bool = False) -> Message | None:
        lock = " FOR UPDATE" if for_update else ""
        row = self._conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM chat.messages AS m"
            " WHERE m.tenant_id = %s AND m.id = %s" + lock,
            (self._tenant_id, message_id),
        ).fetchone()
        return _message(row) if row else None

    def set_message_status(
        self,
        message_id: UUID,
        status: MessageStatus,
        *,
        error_code: str | None = None,
        only_from: MessageStatus | None = None,
    ) -> bool:
        """Move a message to ``status`` (only from ``only_from``, if given); False if no
        message moved."""
        row = self._conn.execute(
            """
            UPDATE chat.messages SET status = %(status)s, error_code = %(error)s
            WHERE tenant_id = %(tenant)s AND id = %(id)s
              AND (%(from)s::text IS NULL OR status = %(from)s)
            RETURNING id
            """,
            {
                "status": status,
                "error": error_code,
                "tenant": self._tenant_id,
                "id": message_id,
                "from": only_from,
            },
        ).fetchone()
        return row is not None

    def history(self, session_id: UUID, *, limit: int = 200) -> list[Message]:
        """A session's messages in order, each with its citations, in one query."""
        rows = self._conn.execute(
            f"""
            SELECT {_MESSAGE_COLUMNS},
                   coalesce((
                       SELECT jsonb_agg(jsonb_build_object(
                                  'rank', r.rank, 'score', r.score, 'chunk_id', r.chunk_id,
                                  'document_id', r.document_id, 'document_title', d.title)
                              ORDER BY r.rank)
                       FROM chat.message_references AS r
                       LEFT JOIN knowledge.documents AS d ON d.id = r.document_id
                       WHERE r.tenant_id = m.tenant_id AND r.message_id = m.id
                   ), '[]'::jsonb) AS citations
            FROM chat.messages AS m
            WHERE m.tenant_id = %s AND m.session_id = %s
            ORDER BY m.created_at, m.id
            LIMIT %s
            """,
            (self._tenant_id, session_id, limit),
        ).fetchall()
        return [_message(row, row["citations"]) for row in rows]

    def add_feedback(
        self, message_id: UUID, *, user_id: UUID, rating: int, comment: str | None
    ) -> UUID | None:
        """Record (or replace) a user's rating of an assistant message; None if no such
        answer exists in the tenant."""
        row = self._conn.execute(
            """
            INSERT INTO chat.message_feedback (tenant_id, message_id, user_id, rating, comment)
            SELECT m.tenant_id, m.id, %(user)s, %(rating)s, %(comment)s
            FROM chat.messages AS m
            WHERE m.tenant_id = %(tenant)s AND m.id = %(message)s AND m.role = 'assistant'
            ON CONFLICT (tenant_id, message_id, user_id)
            DO UPDATE SET rating = EXCLUDED.rating, comment = EXCLUDED.comment
            RETURNING id
            """,
            {
                "tenant": self._tenant_id,
                "message": message_id,
                "user": user_id,
                "rating": rating,
                "comment": comment,
            },
        ).fetchone()
        return row["id"] if row else None

    def usage(self, *, since: date, until: date) -> list[UsageRow]:
        """Calls and tokens per day (UTC), user and model in ``[since, until)``."""
        rows = self._conn.execute(
            """
            SELECT (created_at AT TIME ZONE 'UTC')::date AS day, user_id, model,
                   count(*) AS calls, sum(prompt_tokens) AS prompt_tokens,
                   sum(completion_tokens) AS completion_tokens,
                   sum(cost_estimate) AS cost_estimate
            FROM chat.token_usage_log
            WHERE tenant_id = %s
              AND created_at >= %s::date AT TIME ZONE 'UTC'
              AND created_at < %s::date AT TIME ZONE 'UTC'
            GROUP BY 1, 2, 3
            ORDER BY 1, 3, 2
            """,
            (self._tenant_id, since, until),
        ).fetchall()
        return [
            UsageRow(
                day=row["day"],
                user_id=row["user_id"],
                model=row["model"],
                calls=row["calls"],
                prompt_tokens=int(row["prompt_tokens"]),
                completion_tokens=int(row["completion_tokens"]),
                cost_estimate=row["cost_estimate"],
            )
            for row in rows
        ]
