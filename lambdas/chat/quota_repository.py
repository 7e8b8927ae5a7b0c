"""Token quotas: reserve before a provider call, settle after it (with its answer), release on
failure.

The guard is one conditional UPDATE (``used + reserved + n <= token_limit``), so concurrent
reservations can never take a tenant past its limit: PostgreSQL serialises them on the row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any, LiteralString
from uuid import UUID

from lambdas.chat.constants import DEFAULT_MONTHLY_TOKENS, RESERVATION_TTL_S
from lambdas.chat.errors import TokenQuotaExceeded
from lambdas.chat.models import Reservation, TokenUsage
from lambdas.chat.rows import one
from lambdas.shared.db import Connection, Cursor

# How a statement is sent: ``Connection.execute``, or ``UnitOfWork.commit_with``.
Send = Callable[[LiteralString, Mapping[str, Any]], Cursor]

# The current period: the calendar month in UTC.
_PERIOD: LiteralString = "date_trunc('month', now() AT TIME ZONE 'UTC')::date"

_RESERVE_SQL: LiteralString = (
    """
    WITH usage AS (
        UPDATE chat.token_usage
        SET reserved = reserved + %(tokens)s
        WHERE tenant_id = %(tenant)s AND period_start = """
    + _PERIOD
    + """
          AND used + reserved + %(tokens)s <= token_limit
        RETURNING id, tenant_id
    )
    INSERT INTO chat.token_reservations (tenant_id, usage_id, user_id, tokens, expires_at)
    SELECT tenant_id, id, %(user)s, %(tokens)s, now() + make_interval(secs => %(ttl)s)
    FROM usage
    RETURNING id, tokens, expires_at"""
)

# A select item that makes its transaction commit without waiting for the WAL flush:
# ``synchronous_commit`` off for this transaction alone (as SET LOCAL), so the connection's next
# transaction waits for its flush again. The one spelling of "commit unflushed" (the chat unit
# of work selects it before a plain COMMIT).
UNFLUSHED: LiteralString = "set_config('synchronous_commit', 'off', true) AS synchronous_commit"

# The reservation, committed unflushed: the setting comes with the reservation's own row, so
# that the statement and the COMMIT behind it travel in one round trip. When nothing is
# reserved, nothing is written.
_RESERVE_UNFLUSHED_SQL: LiteralString = _RESERVE_SQL + ", " + UNFLUSHED

_OPEN_PERIOD_SQL = f"""
    INSERT INTO chat.token_usage (tenant_id, period_start, token_limit)
    VALUES (%(tenant)s, {_PERIOD},
            coalesce(chat.monthly_token_limit(%(tenant)s), %(default)s))
    ON CONFLICT (tenant_id, period_start) DO NOTHING
"""

# The settlement of a call's reservation to the tokens it used (``%(total)s``), as CTEs
# (``previous``, ``settled``, ``used``) of the statement that stores the call's answer
# (``ChatRepository.settle_and_store_answer``). The reservation's previous status decides whether
# its tokens are still held: the sweeper may have expired it while the call was running, and then
# only the usage is added. A reservation settled or released already, or another tenant's, is
# left as it is (settling twice counts once).
SETTLE_CTES: LiteralString = """
    previous AS (
        SELECT id, usage_id, tokens, status
        FROM chat.token_reservations
        WHERE id = %(reservation)s AND tenant_id = %(tenant)s
          AND status IN ('reserved', 'expired')
        FOR UPDATE
    ), settled AS (
        UPDATE chat.token_reservations AS r
        SET status = 'settled', actual_tokens = %(total)s, settled_at = now()
        FROM previous AS p
        WHERE r.id = p.id
        RETURNING p.usage_id, p.tokens, p.status AS was
    ), used AS (
        UPDATE chat.token_usage AS u
        SET used = u.used + %(total)s,
            reserved = u.reserved - CASE WHEN s.was = 'reserved' THEN s.tokens ELSE 0 END
        FROM settled AS s
        WHERE u.id = s.usage_id
    )"""

_RELEASE_SQL = """
    WITH released AS (
        UPDATE chat.token_reservations
        SET status = 'released', settled_at = now()
        WHERE id = %(id)s AND tenant_id = %(tenant)s AND status = 'reserved'
        RETURNING usage_id, tokens
    )
    UPDATE chat.token_usage AS u
    SET reserved = u.reserved - r.tokens
    FROM released AS r
    WHERE u.id = r.usage_id
    RETURNING u.id
"""


def _usage(row: dict[str, Any]) -> TokenUsage:
    return TokenUsage(
        period_start=row["period_start"],
        token_limit=row["token_limit"],
        used=row["used"],
        reserved=row["reserved"],
    )


class TokenQuotaRepository:
    """One tenant's token quota for the current month."""

    def __init__(
        self, conn: Connection, tenant_id: UUID, *, default_limit: int = DEFAULT_MONTHLY_TOKENS
    ) -> None:
        self._conn = conn
        self._tenant_id = tenant_id
        self._default_limit = default_limit

    def reserve(
        self, tokens: int, *, user_id: UUID | None, ttl_s: int = RESERVATION_TTL_S
    ) -> Reservation:
        """Hold ``tokens`` for a call, or raise ``TokenQuotaExceeded``; the month's counter is
        opened on first use with the override, the plan's quota or the default."""
        if tokens <= 0:
            raise ValueError("a reservation holds at least one token")
        params = {"tenant": self._tenant_id, "tokens": tokens, "user": user_id, "ttl": ttl_s}
        row = self._conn.execute(_RESERVE_SQL, params).fetchone()
        if row is None and self.current() is None:
            # the month's first call (or a concurrent one) opens the counter; try once more
            self._open_period()
            row = self._conn.execute(_RESERVE_SQL, params).fetchone()
        if row is None:
            usage = self.current()
            available = usage.available if usage else 0
            raise TokenQuotaExceeded(
                "the tenant's monthly token quota is exhausted",
                details=[{"requested": tokens, "available": available}],
            )
        return Reservation(id=row["id"], tokens=row["tokens"], expires_at=row["expires_at"])

    def reserve_in_open_period(
        self,
        tokens: int,
        *,
        user_id: UUID | None,
        ttl_s: int = RESERVATION_TTL_S,
        send: Send | None = None,
    ) -> Reservation | None:
        """Hold ``tokens`` in the month's counter if it is open and has room, in one statement
        whose transaction then commits without waiting for the WAL flush (``send``: the unit of
        work's ``commit_with`` sends the COMMIT with it). None when nothing was reserved: the
        month's first call (``reserve`` opens the counter) or the quota exhausted."""
        if tokens <= 0:
            raise ValueError("a reservation holds at least one token")
        params = {"tenant": self._tenant_id, "tokens": tokens, "user": user_id, "ttl": ttl_s}
        row = (send or self._conn.execute)(_RESERVE_UNFLUSHED_SQL, params).fetchone()
        if row is None:
            return None
        return Reservation(id=row["id"], tokens=row["tokens"], expires_at=row["expires_at"])

    def release(self, reservation_id: UUID) -> bool:
        """Give the reserved tokens back (the call failed). False if nothing was held."""
        row = self._conn.execute(
            _RELEASE_SQL, {"id": reservation_id, "tenant": self._tenant_id}
        ).fetchone()
        return row is not None

    def current(self) -> TokenUsage | None:
        row = self._conn.execute(
            f"""
            SELECT period_start, token_limit, used, reserved FROM chat.token_usage
            WHERE tenant_id = %s AND period_start = {_PERIOD}
            """,
            (self._tenant_id,),
        ).fetchone()
        return _usage(row) if row else None

    def set_monthly_limit(self, monthly_limit: int) -> None:
        """Override the plan's quota (an operator's decision); the open month follows it."""
        self._conn.execute(
            """
            INSERT INTO chat.token_quotas (tenant_id, monthly_limit) VALUES (%s, %s)
            ON CONFLICT (tenant_id) DO UPDATE SET monthly_limit = EXCLUDED.monthly_limit
            """,
            (self._tenant_id, monthly_limit),
        )
        self._conn.execute(
            f"""
            UPDATE chat.token_usage SET token_limit = %s
            WHERE tenant_id = %s AND period_start = {_PERIOD}
            """,
            (monthly_limit, self._tenant_id),
        )

    def _open_period(self) -> None:
        self._conn.execute(
            _OPEN_PERIOD_SQL, {"tenant": self._tenant_id, "default": self._default_limit}
        )


def release_stale(conn: Connection, *, answers_older_than: timedelta | None = None) -> int:
    """The scheduled sweeper, in every tenant: release expired reservations and, given an age,
    hand back the questions left 'answering' longer than that by an invocation that died
    before its answer (approved ones to 'pending', others 'failed'). How many of both."""
    row = conn.execute(
        "SELECT reservations + answers AS released FROM chat.release_stale_v1(%s)",
        (answers_older_than,),
    ).fetchone()
    return int(one(row)["released"])


def current_period(conn: Connection) -> date:
    row = conn.execute(f"SELECT {_PERIOD} AS period").fetchone()
    period: date = one(row)["period"]
    return period
