"""One lazily created psycopg connection per execution environment, and the unit of work.

The transaction a unit of work runs in belongs to the request (``lambdas.shared.scope``): the
connection here only opens transactions, scoped to a tenant, when the scope asks.

The connection is created on first use (never at import), reused across invocations, and
replaced once when it turns out to be broken (Aurora failover, a paused cluster resuming, a
restarted local server). Credentials come from a provider callable; on a failed connect the
provider is asked again with ``force=True`` so a rotated password is picked up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, LiteralString, Self
from uuid import UUID

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types import TypeInfo

from lambdas.shared.constants import TENANT_SETTING
from lambdas.shared.observability import logger
from lambdas.shared.pgconnect import ONE_REFRESH, connect_with_retry
from lambdas.shared.secrets import DbCredentials

if TYPE_CHECKING:
    from lambdas.shared.scope import AuditLog, EventDraft, Outbox, RequestScope

CredentialsProvider = Callable[[bool], DbCredentials]
Connection = psycopg.Connection[dict[str, Any]]
Cursor = psycopg.Cursor[dict[str, Any]]
# A statement and its parameters, sent in the same round trip as BEGIN and the tenant scoping.
OpeningQuery = tuple[LiteralString, Mapping[str, Any]]

_TENANT_SQL = "select set_config(%s, %s, true)"
_BEGIN: LiteralString = "BEGIN"
_BEGIN_READ_ONLY: LiteralString = "BEGIN READ ONLY"


def set_tenant(conn: psycopg.Connection[Any], tenant_id: UUID | str | None) -> None:
    """Scope the connection's current transaction to ``tenant_id`` (RLS policies read it), or
    to no tenant; the setting ends with the transaction."""
    conn.execute(_TENANT_SQL, (TENANT_SETTING, str(tenant_id) if tenant_id else ""))


class Database:
    """Owns the execution environment's connection."""

    def __init__(
        self,
        credentials: CredentialsProvider,
        *,
        connect_timeout_s: int,
        application_name: str,
        statement_timeout_ms: int | None = None,
    ) -> None:
        self._credentials = credentials
        self._connect_timeout_s = connect_timeout_s
        self._application_name = application_name
        self._statement_timeout_ms = statement_timeout_ms
        self._conn: Connection | None = None

    def connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def begin(
        self,
        tenant_id: UUID | None,
        *,
        read_only: bool,
        opening: OpeningQuery | None = None,
    ) -> tuple[Connection, Cursor | None]:
        """Open a transaction scoped to ``tenant_id`` (or to no tenant).

        ``read_only`` makes PostgreSQL refuse writes in the transaction. ``opening`` is a read
        that travels in the same round trip as BEGIN and the scoping statement; its cursor is
        returned beside the connection.

        The scoping statement is also the liveness check: if the reused connection is dead it
        fails before any work was done, so one reconnect and retry is always safe.
        """
        tenant = str(tenant_id) if tenant_id else ""
        reused = self._conn is not None and not (self._conn.closed or self._conn.broken)
        conn = self.connection()
        try:
            return conn, self._start_or_abort(conn, tenant, read_only, opening)
        except psycopg.OperationalError:
            if not (conn.closed or conn.broken):
                raise  # a timeout or lock error on a live connection: rolled back, kept
            self.close()
            if not reused:
                raise
            logger.warning("reused database connection was broken; reconnecting once")
            conn = self.connection()
            return conn, self._start_or_abort(conn, tenant, read_only, opening)

    def _start_or_abort(
        self, conn: Connection, tenant: str, read_only: bool, opening: OpeningQuery | None
    ) -> Cursor | None:
        try:
            return self._start(conn, tenant, read_only, opening)
        except psycopg.Error:
            if not (conn.closed or conn.broken):
                conn.rollback()  # e.g. the opening read failed: leave no aborted transaction
            raise

    @staticmethod
    def _start(
        conn: Connection, tenant: str, read_only: bool, opening: OpeningQuery | None
    ) -> Cursor | None:
        # BEGIN, the scoping statement and the opening read travel in one round trip. psycopg's
        # own BEGIN would not: in a pipeline it syncs and waits for BEGIN alone. So the
        # connection stays in autocommit mode and BEGIN is sent here; COMMIT and ROLLBACK
        # still end the transaction it opens.
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.rollback()  # left open by a request that failed to end it: never carry it on
        if not conn.autocommit:
            conn.autocommit = True
        with conn.pipeline():
            conn.execute(_BEGIN_READ_ONLY if read_only else _BEGIN, prepare=False)
            set_tenant(conn, tenant)
            return conn.execute(*opening) if opening else None

    def _connect(self) -> Connection:
        # A rotated password or a moved endpoint: the retry fetches the secret again.
        return connect_with_retry(self._connect_with, ONE_REFRESH)

    def _connect_with(self, refresh: bool) -> Connection:
        options = (
            f"-c statement_timeout={self._statement_timeout_ms}"
            if self._statement_timeout_ms
            else None
        )
        conn = psycopg.connect(
            self._credentials(refresh).conninfo(
                connect_timeout=self._connect_timeout_s,
                application_name=self._application_name,
                options=options,
            ),
            row_factory=dict_row,
            autocommit=False,
        )
        _register_vector(conn)
        return conn


def _register_vector(conn: Connection) -> None:
    """Register pgvector's types once per connection, if the extension is installed yet."""
    from pgvector.psycopg import register_vector  # noqa: PLC0415

    if TypeInfo.fetch(conn, "vector") is not None:
        register_vector(conn)
    conn.rollback()


class UnitOfWork:
    """A tenant-scoped transaction: commits only when ``commit()`` is called, else rolls back.

    It runs in its request scope's transaction: it opens one scoped to ``tenant_id`` (or carries
    on the one the scope already has for that tenant, e.g. the authorization lookup's). On a
    read-only scope, leaving without an error keeps the transaction for the rest of the request,
    which the scope ends with COMMIT: nothing can have been written, and psycopg forgets every
    prepared statement on a ROLLBACK, which would make PostgreSQL plan each query again on the
    next request.

    ``audit`` and ``outbox`` are the scope's writers over this transaction: what they append
    commits or rolls back with the unit's own writes.

    Route groups subclass it to expose their repositories over ``self.conn``.
    """

    def __init__(self, scope: RequestScope, tenant_id: UUID | None = None) -> None:
        self.scope = scope
        self.tenant_id = tenant_id
        self._conn: Connection | None = None
        self._opened: Cursor | None = None
        self.committed = False

    @property
    def conn(self) -> Connection:
        return self._inside()

    def __enter__(self) -> Self:
        self._conn, self._opened = self.scope.begin(self.tenant_id, opening=self._opening())
        self.committed = False
        self._on_enter()
        return self

    def _opening(self) -> OpeningQuery | None:
        """Hook: a read to send in the same round trip as BEGIN (its cursor: ``opened``)."""
        return None

    @property
    def opened(self) -> Cursor:
        if self._opened is None:
            raise RuntimeError("this unit of work sent no opening query")
        return self._opened

    def _on_enter(self) -> None:
        """Hook for subclasses to build repositories over ``self.conn``."""

    @property
    def audit(self) -> AuditLog:
        """The request's audit log, appending in this unit's transaction."""
        self._inside()
        return self.scope.audit

    @property
    def outbox(self) -> Outbox:
        """The request's outbox, emitting in this unit's transaction."""
        self._inside()
        return self.scope.outbox

    def record(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> None:
        """Record one state change in this unit's transaction: its audit row (the event's
        payload as details: ids and non-personal fields only) and its outbox event, both under
        the event's catalogued name (``lambdas/shared/events.py``), in one statement where the
        function registers a change writer (``RequestScope.changes``)."""
        self._inside()
        self.scope.changes.record(
            event_type,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            payload=payload,
            version=version,
        )

    def announce_many(self, events: Sequence[EventDraft]) -> None:
        """Emit many events in one pipelined exchange, in this unit's transaction, without an
        audit row each: for a batch whose one audit row (its own ``record``) covers them."""
        self.outbox.emit_many(events)

    def commit(self) -> None:
        self._inside()
        self.scope.commit()
        self.committed = True

    def commit_with(
        self, query: LiteralString, params: Sequence[Any] | Mapping[str, Any]
    ) -> Cursor:
        """Commit with the unit's last statement in the same round trip
        (``RequestScope.commit_with``); returns that statement's cursor."""
        self._inside()
        cursor = self.scope.commit_with(query, params)
        self.committed = True
        return cursor

    def rollback(self) -> None:
        self._inside()
        self.scope.rollback()

    def _inside(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside its 'with' block")
        return self._conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None or self.committed or conn.closed or conn.broken:
            return
        if exc is None and self.scope.read_only:
            return  # the scope commits it when the request ends
        self.scope.rollback()
