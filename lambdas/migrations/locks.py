"""The two locks a run holds: a PostgreSQL session advisory lock (the one that guarantees a
single writer) and a DynamoDB lease per environment (so operators can see who is migrating,
and a second environment-level runner stops before touching the database)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import psycopg

from lambdas.shared.observability import logger

# Derived once from the text "alquimista-migrations"; any fixed 64-bit key works as long as
# every runner of every version uses the same one.
ADVISORY_LOCK_KEY = 7_245_366_016_713_104_213
POLL_INTERVAL_S = 0.25


class LockBusy(RuntimeError):
    """Another runner holds the lock beyond the bounded wait."""


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
        deadline = time.monotonic() + self._wait_s
        try:
            while True:
                row = conn.execute(
                    """
                    SELECT pg_try_advisory_lock(%s)
                    """,
                    (self._key,),
                ).fetchone()
                if row and row[0]:
                    self._conn = conn
                    return self
                if time.monotonic() >= deadline:
                    raise LockBusy(self._busy_message(conn))
                self._sleep(POLL_INTERVAL_S)
        except BaseException:
            conn.close()
            raise

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


class DynamoLease:
    """A lease per environment in the locks table: taken only if free or expired, renewed
    while the run lasts, released at the end. DynamoDB's TTL removes abandoned leases."""

    def __init__(
        self,
        client: Any,
        *,
        table: str,
        lock_id: str,
        owner: str,
        lease_s: int = 120,
        wait_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table
        self.lock_id = lock_id
        self.owner = owner
        self._lease_s = lease_s
        self._wait_s = wait_s
        self._sleep = sleep
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> Self:
        deadline = time.monotonic() + self._wait_s
        while not self._try_acquire():
            if time.monotonic() >= deadline:
                raise LockBusy(self._busy_message())
            self._sleep(max(POLL_INTERVAL_S, 1.0))
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True)
        self._renewer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={"lock_id": {"S": self.lock_id}},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": self.owner}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            logger.warning("migration lease was taken over before release", extra=self._ids())

    def _try_acquire(self) -> bool:
        now = int(time.time())
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "lock_id": {"S": self.lock_id},
                    "owner": {"S": self.owner},
                    "acquired_at": {"N": str(now)},
                    "expires_at": {"N": str(now + self._lease_s)},
                },
                ConditionExpression="attribute_not_exists(lock_id) OR expires_at < :now",
                ExpressionAttributeValues={":now": {"N": str(now)}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _renew_loop(self) -> None:
        interval = max(1.0, self._lease_s / 3)
        while not self._stop.wait(interval):
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key={"lock_id": {"S": self.lock_id}},
                    UpdateExpression="SET expires_at = :expires",
                    ConditionExpression="#owner = :owner",
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues={
                        ":owner": {"S": self.owner},
                        ":expires": {"N": str(int(time.time()) + self._lease_s)},
                    },
                )
            except Exception:  # a failed renewal must not kill the run; the PG lock still holds
                logger.exception("could not renew the migration lease", extra=self._ids())

    def current(self) -> dict[str, Any] | None:
        item = self._client.get_item(
            TableName=self._table, Key={"lock_id": {"S": self.lock_id}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return {
            "owner": item["owner"]["S"],
            "expires_at": int(item["expires_at"]["N"]),
            "acquired_at": int(item.get("acquired_at", {"N": "0"})["N"]),
        }

    def _busy_message(self) -> str:
        held = self.current()
        if held is None:
            who = "a run that has since released it"
        else:
            acquired = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(held["acquired_at"]))
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(held["expires_at"]))
            who = f"owner {held['owner']!r}, since {acquired}, lease expires {expires}"
        return (
            f"migration lease {self.lock_id!r} in {self._table} is held ({who}); "
            f"gave up after waiting {self._wait_s:g} s"
        )

    def _ids(self) -> dict[str, str]:
        return {"lock_id": self.lock_id, "owner": self.owner}
