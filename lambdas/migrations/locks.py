"""The PostgreSQL session advisory lock a migration run holds: the one guard that guarantees a
single writer, whoever runs it (the Lambda, ``scripts/migrate.py --local``, an operator with
another bundle), and that names its holder (docs/migrations.md, "Locks and time")."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import psycopg

from lambdas.shared.locks import acquire_within

# Derived once from the text "alquimista-migrations"; any fixed 64-bit key works as long as
# every runner of every version uses the same one.
ADVISORY_LOCK_KEY = 7_245_366_016_713_104_213
POLL_INTERVAL_S = 0.25


@dataclass(frozen=True)
class LockHolder:
    pid: int
    application_name: str
    since: str

    def describe(self) -> str:
        name = self.application_name or "(no application_name)"
        return f"pid {self.pid}, application_name {name!r}, since {self.since}"


class AdvisoryLock:
    """A session advisory lock on its own connection, polled up to ``wait_s``.

    A session lock on a dedicated connection survives the per-file commits of the work
    connection, and PostgreSQL releases it by itself if the Lambda dies mid-run.
    """

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        *,
        wait_s: float,
        key: int = ADVISORY_LOCK_KEY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connect = connect
        self._wait_s = wait_s
        self._key = key
        self._sleep = sleep
        self._conn: psycopg.Connection[Any] | None = None

    def __enter__(self) -> Self:
        conn = self._connect()

        def attempt() -> bool:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
            return bool(row and row[0])

        try:
            acquire_within(
                attempt,
                wait_s=self._wait_s,
                interval_s=POLL_INTERVAL_S,
                sleep=self._sleep,
                busy_message=lambda: self._busy_message(conn),
            )
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if not conn.closed and not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        finally:
            conn.close()

    def _busy_message(self, conn: psycopg.Connection[Any]) -> str:
        holder = self.holder(conn)
        who = holder.describe() if holder else "a session that has since ended"
        return (
            f"another migration run holds the database lock ({who}); "
            f"gave up after waiting {self._wait_s:g} s"
        )

    def holder(self, conn: psycopg.Connection[Any]) -> LockHolder | None:
        row = conn.execute(
            """
            SELECT a.pid, coalesce(a.application_name, ''),
                   coalesce(a.query_start, a.backend_start)::text
            FROM pg_locks AS l
            JOIN pg_stat_activity AS a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.objsubid = 1
              AND ((l.classid::bigint << 32) | l.objid::bigint) = %s
            LIMIT 1
            """,
            (self._key,),
        ).fetchone()
        if row is None:
            return None
        return LockHolder(pid=int(row[0]), application_name=str(row[1]), since=str(row[2]))
