"""One lazily created psycopg connection per execution environment, and the unit of work.

The connection is created on first use (never at import), reused across invocations, and
replaced once when it turns out to be broken (Aurora failover, a paused cluster resuming, a
restarted local server). Credentials come from a provider callable; on a failed connect the
provider is asked again with ``force=True`` so a rotated password is picked up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from types import TracebackType
from typing import Any, LiteralString, Self
from uuid import UUID

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types import TypeInfo

from lambdas.shared.constants import TENANT_SETTING
from lambdas.shared.observability import logger
from lambdas.shared.pgconnect import ONE_REFRESH, connect_with_retry
from lambdas.shared.secrets import DbCredentials

CredentialsProvider = Callable[[bool], DbCredentials]
Connection = psycopg.Connection[dict[str, Any]]
Cursor = psycopg.Cursor[dict[str, Any]]
# A statement and its parameters, sent in the same round trip as BEGIN and the tenant scoping.
OpeningQuery = tuple[LiteralString, Mapping[str, Any]]

_TENANT_SQL = "select set_config(%s, %s, true)"

# Whether the request being served may only read (set by the HTTP entry point for GET).
READ_ONLY_REQUEST: ContextVar[bool] = ContextVar("read_only_request", default=False)


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
        # A transaction a unit of work handed over to the next one (same tenant and mode).
        self._held: tuple[str, bool] | None = None

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
        read_only: bool | None = None,
        opening: OpeningQuery | None = None,
    ) -> tuple[Connection, Cursor | None]:
        """Open a transaction scoped to ``tenant_id`` (or to no tenant).

        ``read_only`` (default: ``READ_ONLY_REQUEST``, which the API sets for safe HTTP
        methods) makes PostgreSQL refuse writes in the transaction. ``opening`` is a read that
        travels in the same round trip as BEGIN and the scoping statement; its cursor is
        returned beside the connection.

        The scoping statement is also the liveness check: if the reused connection is dead it
        fails before any work was done, so one reconnect and retry is always safe.
        """
        tenant = str(tenant_id) if tenant_id else ""
        read_only = READ_ONLY_REQUEST.get() if read_only is None else read_only
        held, self._held = self._held, None
        if held is not None and self._conn is not None:
            if held == (tenant, read_only) and _in_transaction(self._conn):
                return self._conn, self._open_held(self._conn, opening)
            self._finish(self._conn)
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
            self._abort(conn)  # e.g. the opening read failed: leave no aborted transaction
            raise

    def _open_held(self, conn: Connection, opening: OpeningQuery | None) -> Cursor | None:
        if opening is None:
            return None
        try:
            return conn.execute(*opening)
        except psycopg.Error:
            self._abort(conn)
            raise

    @staticmethod
    def _abort(conn: Connection) -> None:
        if not (conn.closed or conn.broken):
            conn.rollback()

    def hold(self, conn: Connection, tenant_id: UUID | None) -> None:
        """Keep the open transaction for the next ``begin`` with the same tenant and mode (the
        request's authorization lookup hands its transaction to the route's unit of work)."""
        self._held = (str(tenant_id) if tenant_id else "", bool(conn.read_only))

    def release(self) -> None:
        """End a held transaction nobody took over (called at the end of each request)."""
        held, self._held = self._held, None
        if held is not None and self._conn is not None:
            self._finish(self._conn)

    @staticmethod
    def _finish(conn: Connection) -> None:
        if conn.closed or conn.broken or not _in_transaction(conn):
            return
        if conn.read_only:
            conn.commit()
        else:
            conn.rollback()

    @staticmethod
    def _start(
        conn: Connection, tenant: str, read_only: bool, opening: OpeningQuery | None
    ) -> Cursor | None:
        if conn.read_only != read_only:
            conn.read_only = read_only  # psycopg then opens with BEGIN READ ONLY
        # BEGIN, the scoping statement and the opening read travel in one round trip
        with conn.pipeline():
            conn.execute(_TENANT_SQL, (TENANT_SETTING, tenant))
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


def _in_transaction(conn: Connection) -> bool:
    return conn.info.transaction_status == TransactionStatus.INTRANS


def _register_vector(conn: Connection) -> None:
    """Register pgvector's types once per connection, if the extension is installed yet."""
    from pgvector.psycopg import register_vector  # noqa: PLC0415

    if TypeInfo.fetch(conn, "vector") is not None:
        register_vector(conn)
    conn.rollback()


class UnitOfWork:
    """A tenant-scoped transaction: commits only when ``commit()`` is called, else rolls back.

    A read-only transaction that ends without an error is closed with COMMIT instead: nothing
    can have been written, and psycopg forgets every prepared statement on a ROLLBACK, which
    would make PostgreSQL plan each query again on the next request.

    Route groups subclass it to expose their repositories over ``self.conn``.
    """

    def __init__(
        self,
        database: Database,
        tenant_id: UUID | None = None,
        *,
        read_only: bool | None = None,
        hand_over: bool = False,
    ) -> None:
        self._database = database
        self.tenant_id = tenant_id
        self._read_only = read_only
        self._hand_over = hand_over
        self._conn: Connection | None = None
        self._opened: Cursor | None = None
        self.committed = False

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside its 'with' block")
        return self._conn

    def __enter__(self) -> Self:
        self._conn, self._opened = self._database.begin(
            self.tenant_id, read_only=self._read_only, opening=self._opening()
        )
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

    def commit(self) -> None:
        self.conn.commit()
        self.committed = True

    def rollback(self) -> None:
        self.conn.rollback()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None or self.committed or conn.closed or conn.broken:
            return
        if exc is None and self._hand_over:
            self._database.hold(conn, self.tenant_id)
        elif exc is None and conn.read_only:
            conn.commit()
        else:
            conn.rollback()
