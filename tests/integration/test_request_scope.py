"""The request scope: one transaction per request, opened by the authorization lookup, carried
on by the route, ended with the request; and the seam for the audit and outbox writers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from lambdas.shared.db import Connection, Database, UnitOfWork
from lambdas.shared.runtime import get_runtime
from lambdas.shared.scope import (
    EventDraft,
    NoTransaction,
    RequestScope,
    WriterNotRegistered,
    Writers,
)
from scripts.devstack.seed_catalog import find_agent
from tests.integration.conftest import World
from tests.support.database import TestDatabase
from tests.support.handlers import call
from tests.support.round_trips import counting_round_trips

SALES_AGENT = find_agent("sdr-prospector")  # in "vendas", which Professional (tenant a) has


def _warm_connection() -> Connection:
    return get_runtime().database.connection()


@pytest.mark.parametrize("path", ["/api/plans", "/api/agents"])
def test_a_get_costs_three_round_trips(world: World, path: str) -> None:
    viewer = world.a.user("viewer")
    assert call("GET", path, user=viewer).status == 200  # connects, registers pgvector

    with counting_round_trips(_warm_connection()) as trips:
        result = call("GET", path, user=viewer)

    assert result.status == 200
    assert len(trips) == 3, trips.trips
    opening, route_query, ending = trips.trips
    assert opening[0] == "BEGIN READ ONLY"
    assert "set_config" in opening[1]
    assert "alquimista_platform.memberships" in opening[2]
    assert len(route_query) == 1
    assert ending == ["COMMIT"]


def test_a_warm_get_with_prepared_statements_still_costs_three(world: World) -> None:
    viewer = world.a.user("viewer")
    for _ in range(7):  # past psycopg's prepare threshold (5)
        assert call("GET", "/api/plans", user=viewer).status == 200

    with counting_round_trips(_warm_connection()) as trips:
        assert call("GET", "/api/plans", user=viewer).status == 200

    assert len(trips) == 3, trips.trips
    assert any(sent.startswith("prepared:") for sent in trips.trips[0])


def test_a_write_continues_the_authorization_transaction_and_commits_once(world: World) -> None:
    admin = world.a.user("admin")
    assert call("GET", "/api/agents", user=admin).status == 200

    with counting_round_trips(_warm_connection()) as trips:
        result = call("POST", f"/api/agents/{SALES_AGENT.id}/activate", user=admin)

    assert result.status == 200
    sent = [statement for trip in trips.trips for statement in trip]
    assert trips.trips[0][0] == "BEGIN"  # read-write, with the membership lookup
    assert sent.count("BEGIN") == 1
    assert trips.trips[-1] == ["COMMIT"]
    # the activation's audit row and its event: one statement, before the COMMIT
    recorded = [s for s in sent if "audit_append" in s or "outbox_append" in s]
    assert len(recorded) == 1, trips.trips
    assert "audit_append_v3" in recorded[0]
    assert "outbox_append_v1" in recorded[0]
    assert "ROLLBACK" not in sent


def test_a_refused_caller_leaves_no_transaction_open(world: World) -> None:
    viewer = world.a.user("viewer")

    result = call("POST", f"/api/agents/{SALES_AGENT.id}/activate", user=viewer)

    assert result.status == 403
    assert _warm_connection().info.transaction_status == TransactionStatus.IDLE


def test_a_route_that_fails_leaves_no_transaction_open(world: World) -> None:
    viewer = world.a.user("viewer")

    result = call("GET", "/api/agents", user=viewer, query="cursor=%21%21%21")

    assert result.status == 422
    assert _warm_connection().info.transaction_status == TransactionStatus.IDLE


# -- the writers' seam ----------------------------------------------------------------------


@pytest.fixture
def database(db: TestDatabase):
    database = db.lambda_database()
    with _scope(database) as scope, UnitOfWork(scope) as uow:
        uow.conn.execute("CREATE TEMP TABLE written (what text, tenant text, request text)")
        uow.commit()
    yield database
    database.close()


@dataclass
class RecordingWriter:
    """A writer that appends in the transaction it was built over, like the real ones."""

    conn: Connection
    tenant_id: uuid.UUID | None
    request_id: str | None
    actor_type: str
    calls: list[str] = field(default_factory=list)

    def _write(self, what: str) -> None:
        self.conn.execute(
            "INSERT INTO written VALUES (%s, %s, %s)",
            (what, str(self.tenant_id) if self.tenant_id else None, self.request_id),
        )
        self.calls.append(what)

    def append(
        self,
        action: str,
        *,
        resource_type: str,
        resource_id: str | None = None,
        outcome: str = "success",
        details: Mapping[str, Any] | None = None,
    ) -> str:
        self._write(f"audit:{action}")
        return action

    def emit(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> str:
        self._write(f"event:{event_type}")
        return event_type

    def emit_many(self, events: Sequence[EventDraft]) -> list[str]:
        return [
            self.emit(
                e.event_type,
                aggregate_type=e.aggregate_type,
                aggregate_id=e.aggregate_id,
                payload=e.payload,
            )
            for e in events
        ]

    def record(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> str:
        self._write(f"audit:{event_type}")
        self._write(f"event:{event_type}")
        return event_type


built: list[RecordingWriter] = []


def _recording(conn: Connection, scope: RequestScope) -> RecordingWriter:
    writer = RecordingWriter(conn, scope.tenant_id, scope.request_id, scope.actor_type)
    built.append(writer)
    return writer


WRITERS = Writers(audit=_recording, outbox=_recording, changes=_recording)


def _scope(database: Database, **options: Any) -> RequestScope:
    return RequestScope(lambda: database, request_id="req-1", writers=WRITERS, **options)


def _written(database: Database) -> list[tuple[str, str | None, str | None]]:
    with _scope(database, read_only=True) as scope, UnitOfWork(scope) as uow:
        rows = uow.conn.execute("SELECT * FROM written ORDER BY what").fetchall()
    return [(row["what"], row["tenant"], row["request"]) for row in rows]


def test_writers_append_in_the_unit_of_work_s_transaction_and_commit_with_it(database) -> None:
    tenant = uuid.uuid4()

    with _scope(database) as scope, UnitOfWork(scope, tenant) as uow:
        uow.audit.append("agent.activated", resource_type="agent", resource_id="a-1")
        uow.outbox.emit(
            "agent.activated", aggregate_type="agent", aggregate_id="a-1", payload={"x": 1}
        )
        uow.commit()

    assert _written(database) == [
        ("audit:agent.activated", str(tenant), "req-1"),
        ("event:agent.activated", str(tenant), "req-1"),
    ]


def _change_plan_then_fail(scope: RequestScope) -> None:
    with UnitOfWork(scope) as uow:
        uow.audit.append("plan.changed", resource_type="subscription")
        uow.outbox.emit("plan.changed", aggregate_type="subscription", aggregate_id="s", payload={})
        raise RuntimeError("the service failed after writing")


def test_what_writers_appended_is_rolled_back_with_a_failing_unit_of_work(database) -> None:
    with _scope(database) as scope, pytest.raises(RuntimeError):
        _change_plan_then_fail(scope)

    assert _written(database) == []


def test_a_writer_is_built_once_per_transaction(database) -> None:
    built.clear()
    with _scope(database) as scope:
        with UnitOfWork(scope) as uow:
            first = uow.audit
            assert uow.audit is first
            uow.commit()
        with UnitOfWork(scope) as uow:
            assert uow.audit is not first  # a new transaction, a new writer over it

    assert len(built) == 2


def test_a_writer_knows_the_transaction_s_tenant_not_only_the_caller_s(database) -> None:
    # a public route (no caller) working for the tenant a signed webhook names
    named = uuid.uuid4()
    with _scope(database) as scope, UnitOfWork(scope, named) as uow:
        writer = uow.audit

    assert isinstance(writer, RecordingWriter)
    assert writer.tenant_id == named
    assert writer.actor_type == "anonymous"


def test_writers_outside_a_unit_of_work_are_refused(database) -> None:
    scope = _scope(database)

    with pytest.raises(NoTransaction):
        _ = scope.audit
    with pytest.raises(NoTransaction):
        _ = scope.outbox


def test_a_writer_nobody_registered_is_refused_by_name(database) -> None:
    with (
        RequestScope(lambda: database) as scope,
        UnitOfWork(scope) as uow,
        pytest.raises(WriterNotRegistered, match="outbox"),
    ):
        _ = uow.outbox


def test_a_change_is_recorded_only_by_a_registered_change_writer(database) -> None:
    """The audit and outbox writers alone do not record a change: a change's row and event go
    together through the change writer, or the function fails loudly."""
    writers = Writers(audit=_recording, outbox=_recording)
    with (
        RequestScope(lambda: database, writers=writers) as scope,
        UnitOfWork(scope) as uow,
        pytest.raises(WriterNotRegistered, match="change"),
    ):
        uow.record("agent.activated", aggregate_type="agent", aggregate_id="a-1", payload={})


def test_a_public_scope_has_no_caller_and_no_tenant(database) -> None:
    scope = _scope(database)

    assert scope.principal is None
    assert scope.tenant_id is None
    assert scope.actor_id is None
    with pytest.raises(Exception, match="missing or invalid token"):
        _ = scope.caller


def test_a_statement_error_the_service_handled_is_rolled_back_at_the_end(database) -> None:
    scope = _scope(database, read_only=True)
    with UnitOfWork(scope) as uow:
        with pytest.raises(psycopg.errors.DivisionByZero):
            uow.conn.execute("SELECT 1 / 0")
        assert uow.conn.info.transaction_status == TransactionStatus.INERROR

    scope.end()

    assert database.connection().info.transaction_status == TransactionStatus.IDLE
