"""One request's state, explicit: created where the request enters, ended when it leaves.

A ``RequestScope`` owns the request's database transaction, the authorized caller, the request
id, the read-only flag (safe HTTP methods) and the audit and outbox writers of the request.
Units of work are built from it: the first one opens the transaction, the next ones for the same
tenant continue it, and the scope ends whatever is still open when the request ends (COMMIT for a
read-only request, ROLLBACK otherwise: a write is kept only when a unit of work commits it).

On an authorized request the membership lookup opens the transaction (BEGIN, the tenant scoping
and the lookup pipelined in one round trip) and the route's unit of work carries on in it, so a
GET costs three round trips: that opening, the route's query and the COMMIT.

A service records a write in the same transaction through its unit of work: ``record`` writes
the change's audit row and its outbox event (one statement with the registered change writer),
and ``audit``/``outbox`` append or emit on their own::

    with uow_factory() as uow:
        activation = uow.activations.activate(agent_id, actor_id=actor_id, source=source)
        uow.record("agent.activated", aggregate_type="agent", aggregate_id=str(agent_id),
                   payload={"agent_id": agent_id, "source": source})
        uow.commit()  # the change, its audit row and its event, or none of them
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, LiteralString, Protocol, Self
from uuid import UUID

import psycopg
from psycopg.pq import TransactionStatus

from lambdas.shared.auth import Principal, authorize
from lambdas.shared.auth_repository import (
    account_from_row,
    account_query,
    grant_from_row,
    grant_query,
)
from lambdas.shared.errors import Unauthorized

if TYPE_CHECKING:
    from lambdas.shared.auth import MembershipGrant
    from lambdas.shared.db import Connection, Cursor, Database, OpeningQuery

ActorType = Literal["user", "anonymous", "system"]

_COMMIT: LiteralString = "COMMIT"


class _AbortedPipelineNotice(logging.Filter):
    """Drops the warning psycopg logs when a pipeline ends after a statement in it failed: its
    exit meets "pipeline aborted" (everything queued behind the failed statement was skipped),
    while the statement's own error is what is raised. ``commit_with`` refuses that way on
    purpose (e.g. a question for a closed session: 409), so the warning was noise on expected
    answers. Any other psycopg log record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith("error ignored terminating") and message.endswith("pipeline aborted")
        )


logging.getLogger("psycopg").addFilter(_AbortedPipelineNotice())


class AuditLog(Protocol):
    def append(
        self,
        action: str,
        *,
        resource_type: str,
        resource_id: str | None = None,
        outcome: str = "success",
        details: Mapping[str, Any] | None = None,
    ) -> Any: ...


@dataclass(frozen=True)
class EventDraft:
    """One event to emit, as ``Outbox.emit`` takes it (``emit_many`` takes several)."""

    event_type: str
    aggregate_type: str
    aggregate_id: str
    payload: Mapping[str, Any]
    version: int = 1


class Outbox(Protocol):
    def emit(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> Any: ...

    def emit_many(self, events: Sequence[EventDraft]) -> Any: ...


class ChangeRecorder(Protocol):
    """What a service's unit of work offers to record one state change: its audit row and its
    outbox event, in the unit's transaction (``lambdas.shared.db.UnitOfWork.record``)."""

    def record(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> Any: ...


# Build a writer over the scope's open transaction (its connection) for this scope's request.
AuditFactory = Callable[["Connection", "RequestScope"], AuditLog]
OutboxFactory = Callable[["Connection", "RequestScope"], Outbox]
ChangeFactory = Callable[["Connection", "RequestScope"], ChangeRecorder]


@dataclass(frozen=True)
class Writers:
    """The writer factories a function registers in its composition root
    (``lambdas.shared.runtime``); None until a writer exists. ``changes`` records a change's
    audit row and event together (one statement): the only way a change is recorded."""

    audit: AuditFactory | None = None
    outbox: OutboxFactory | None = None
    changes: ChangeFactory | None = None


class NoTransaction(RuntimeError):
    """A writer was asked for outside a unit of work."""


class WriterNotRegistered(RuntimeError):
    """The function's composition root registered no factory for this writer."""


class RequestScope:
    """The state of one request (or of one job run): see the module's docstring.

    ``database`` is called on the first unit of work only, so a request that never touches
    PostgreSQL (a 404, a refused body) builds no settings and opens no connection.
    """

    def __init__(
        self,
        database: Callable[[], Database],
        *,
        request_id: str | None = None,
        read_only: bool = False,
        actor_type: ActorType = "anonymous",
        writers: Writers | None = None,
    ) -> None:
        self._database = database
        self.request_id = request_id
        self.read_only = read_only
        self._actor_type: ActorType = actor_type
        self._writers = writers or Writers()
        self.principal: Principal | None = None
        self._conn: Connection | None = None
        self._tenant: UUID | None = None  # the open transaction's tenant
        self._audit: AuditLog | None = None
        self._outbox: Outbox | None = None
        self._changes: ChangeRecorder | None = None
        self._denied_actor: UUID | None = None  # the refused caller, while their denial is audited
        # What is derived once per request and must not outlive it (the gate's loaded policy);
        # each owner keys its entries by its name and the tenant.
        self.memo: dict[Hashable, object] = {}

    # -- who is calling -------------------------------------------------------------------

    @property
    def caller(self) -> Principal:
        """The authorized caller; Unauthorized on a request that has none (a public route)."""
        if self.principal is None:
            raise Unauthorized("missing or invalid token")
        return self.principal

    @property
    def tenant_id(self) -> UUID | None:
        """The tenant of the open transaction, else the caller's, else None."""
        if self.in_transaction:
            return self._tenant
        return self.principal.tenant_id if self.principal else None

    @property
    def actor_id(self) -> UUID | None:
        return self.principal.user_id if self.principal else self._denied_actor

    @property
    def actor_type(self) -> ActorType:
        return "user" if self.principal or self._denied_actor else self._actor_type

    def record_denial(
        self,
        *,
        tenant_id: UUID,
        actor_id: UUID,
        action: str,
        resource_type: str,
        resource_id: str,
        details: Mapping[str, Any],
    ) -> None:
        """Audit a refused attempt as ``denied`` in ``tenant_id``'s chain, in a write transaction
        of its own: the request's transaction may be read-only, and it is rolled back."""
        if self._writers.audit is None:
            return
        self.end()
        conn, _ = self._database().begin(tenant_id, read_only=False)
        self._conn, self._tenant, self._denied_actor = conn, tenant_id, actor_id
        try:
            self.audit.append(
                action,
                resource_type=resource_type,
                resource_id=resource_id,
                outcome="denied",
                details=details,
            )
            self.commit()
        except BaseException:
            self.rollback()
            raise
        finally:
            self._denied_actor = None

    def authorize(self, event: Mapping[str, Any], permission: str) -> Principal:
        """Resolve the caller of ``event`` in PostgreSQL and check ``permission`` (see
        ``auth.authorize``); the lookup opens the transaction the route's unit of work then
        continues."""
        self.principal = authorize(event, permission, self._lookup_grant, self._account_known)
        return self.principal

    def _lookup_grant(self, sub: UUID, tenant_id: UUID) -> MembershipGrant | None:
        _, opened = self.begin(tenant_id, opening=grant_query(sub, tenant_id))
        return grant_from_row(opened.fetchone() if opened else None)

    def _account_known(self, sub: UUID) -> bool:
        """Asked only when a caller is refused: in the open transaction, else in one scoped to
        no tenant (the users table is not tenant-owned)."""
        _, opened = self.begin(self.tenant_id, opening=account_query(sub))
        return account_from_row(opened.fetchone() if opened else None)

    # -- the transaction ------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """Whether the scope has a usable transaction open."""
        return self._status() == TransactionStatus.INTRANS

    def _status(self) -> TransactionStatus | None:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            return None
        return conn.info.transaction_status

    def begin(
        self, tenant_id: UUID | None, *, opening: OpeningQuery | None = None
    ) -> tuple[Connection, Cursor | None]:
        """The transaction for ``tenant_id``: the open one if it is scoped to that tenant, else
        a new one (ending the open one first). ``opening`` is a read sent with BEGIN and the
        tenant scoping in one round trip when the transaction is new; its cursor is returned."""
        if self.in_transaction and self._conn is not None and self._tenant == tenant_id:
            return self._conn, self._continue(self._conn, opening)
        self.end()
        conn, opened = self._database().begin(tenant_id, read_only=self.read_only, opening=opening)
        self._conn, self._tenant = conn, tenant_id
        return conn, opened

    def _continue(self, conn: Connection, opening: OpeningQuery | None) -> Cursor | None:
        if opening is None:
            return None
        try:
            return conn.execute(*opening)
        except psycopg.Error:
            self.rollback()
            raise

    def commit(self) -> None:
        """Commit the open transaction (with what the writers appended to it)."""
        conn = self._required_conn()
        self._forget_writers()
        conn.commit()

    def commit_with(
        self, query: LiteralString, params: Sequence[Any] | Mapping[str, Any]
    ) -> Cursor:
        """Send the transaction's last statement and COMMIT in one pipelined round trip (a
        statement, then ``commit()``, takes two); returns the statement's cursor, rows fetched.

        If the statement fails, PostgreSQL skips the COMMIT queued behind it: nothing is
        committed, the error is raised and the transaction is left aborted for a rollback.
        """
        conn = self._required_conn()
        self._forget_writers()
        with conn.pipeline():
            cursor = conn.execute(query, params)
            conn.execute(_COMMIT, prepare=False)
        return cursor

    def rollback(self) -> None:
        """Roll the open transaction back, if there is one and its connection is alive."""
        conn = self._conn
        self._forget_writers()
        if conn is not None and not (conn.closed or conn.broken):
            conn.rollback()

    def end(self) -> None:
        """End what is still open: a read-only transaction commits (nothing can have been
        written, and a COMMIT keeps psycopg's prepared statements where a ROLLBACK drops them),
        any other rolls back (only a unit of work's ``commit`` keeps writes)."""
        status = self._status()
        if status == TransactionStatus.INTRANS and self.read_only:
            self.commit()
        elif status in {TransactionStatus.INTRANS, TransactionStatus.INERROR}:
            self.rollback()  # INERROR: a statement failed and its error was handled
        else:
            self._forget_writers()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.rollback()
        self.end()

    def _required_conn(self) -> Connection:
        if not self.in_transaction or self._conn is None:
            raise NoTransaction("no transaction is open in this request scope")
        return self._conn

    # -- the writers of the open transaction ----------------------------------------------

    @property
    def audit(self) -> AuditLog:
        """The audit writer of the open transaction (built on first use)."""
        conn = self._required_conn()
        if self._audit is None:
            factory = self._writers.audit
            if factory is None:
                raise WriterNotRegistered("no audit writer is registered for this function")
            self._audit = factory(conn, self)
        return self._audit

    @property
    def outbox(self) -> Outbox:
        """The outbox writer of the open transaction (built on first use)."""
        conn = self._required_conn()
        if self._outbox is None:
            factory = self._writers.outbox
            if factory is None:
                raise WriterNotRegistered("no outbox writer is registered for this function")
            self._outbox = factory(conn, self)
        return self._outbox

    @property
    def changes(self) -> ChangeRecorder:
        """The change recorder of the open transaction (built on first use)."""
        conn = self._required_conn()
        if self._changes is None:
            factory = self._writers.changes
            if factory is None:
                raise WriterNotRegistered("no change writer is registered for this function")
            self._changes = factory(conn, self)
        return self._changes

    def _forget_writers(self) -> None:
        self._audit = None
        self._outbox = None
        self._changes = None
