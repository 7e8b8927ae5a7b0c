"""The database layer's transaction rules, on the real PostgreSQL as the runtime role: units
of work run in their request scope's transaction."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import LiteralString

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from lambdas.shared.db import Database, OpeningQuery, UnitOfWork
from lambdas.shared.scope import RequestScope
from tests.support.database import TestDatabase
from tests.support.round_trips import counting_round_trips


@pytest.fixture
def database(db: TestDatabase):
    database = db.lambda_database()
    yield database
    database.close()


def _scope(database: Database, *, read_only: bool = False) -> RequestScope:
    return RequestScope(lambda: database, request_id="test", read_only=read_only)


@contextmanager
def _uow(
    database: Database, tenant: uuid.UUID | None = None, *, read_only: bool = False
) -> Iterator[UnitOfWork]:
    """A unit of work in a request scope of its own, which ends with it."""
    with _scope(database, read_only=read_only) as scope, UnitOfWork(scope, tenant) as uow:
        yield uow


def _tenant_setting(uow: UnitOfWork) -> str:
    row = uow.conn.execute("SELECT current_setting('app.current_tenant_id', true) AS t").fetchone()
    return str(row["t"]) if row else ""


def _transaction_start(uow: UnitOfWork) -> object:
    row = uow.conn.execute("SELECT now() AS started").fetchone()
    return row["started"] if row else None


def test_a_unit_of_work_is_scoped_to_its_tenant_and_only_inside_it(database) -> None:
    tenant = uuid.uuid4()

    with _uow(database, tenant) as uow:
        assert _tenant_setting(uow) == str(tenant)
    with _uow(database, None) as uow:
        assert _tenant_setting(uow) == ""


def test_without_commit_writes_are_rolled_back(database, db) -> None:
    with _uow(database, None) as uow:
        uow.conn.execute("CREATE TEMP TABLE IF NOT EXISTS scratch (n int)")
        uow.commit()
    with _uow(database, None) as uow:
        uow.conn.execute("INSERT INTO scratch VALUES (1)")
    with _uow(database, None) as uow:
        row = uow.conn.execute("SELECT count(*) AS n FROM scratch").fetchone()

    assert row == {"n": 0}


def test_a_read_only_unit_of_work_refuses_writes(database) -> None:
    with (
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
        _uow(database, None, read_only=True) as uow,
    ):
        uow.conn.execute("CREATE TEMP TABLE nope (n int)")


def test_read_only_work_keeps_prepared_statements_across_requests(database) -> None:
    # psycopg forgets prepared statements on ROLLBACK; read-only work ends with COMMIT so the
    # server stops re-planning the same queries on every request.
    for _ in range(8):
        with _uow(database, None, read_only=True) as uow:
            uow.conn.execute("SELECT count(*) FROM alquimista_platform.roles").fetchone()

    with _uow(database, None, read_only=True) as uow:
        row = uow.conn.execute(
            """
            SELECT count(*) AS n FROM pg_prepared_statements
            WHERE statement LIKE '%alquimista_platform.roles%'
            """
        ).fetchone()

    assert row == {"n": 1}


def test_units_of_work_of_one_read_only_scope_share_its_transaction(database) -> None:
    tenant = uuid.uuid4()
    with _scope(database, read_only=True) as scope:
        with UnitOfWork(scope, tenant) as first:
            started = _transaction_start(first)
        # the first unit left the transaction open for the rest of the request
        assert scope.in_transaction

        with UnitOfWork(scope, tenant) as second:
            assert _transaction_start(second) == started

    assert database.connection().info.transaction_status == TransactionStatus.IDLE


def test_a_unit_of_work_for_another_tenant_starts_its_own_transaction(database) -> None:
    other = uuid.uuid4()
    with _scope(database, read_only=True) as scope:
        with UnitOfWork(scope, uuid.uuid4()) as first:
            started = _transaction_start(first)

        with UnitOfWork(scope, other) as second:
            assert _transaction_start(second) != started
            assert _tenant_setting(second) == str(other)


def test_the_scope_ends_the_transaction_it_still_holds(database) -> None:
    scope = _scope(database, read_only=True)
    with UnitOfWork(scope, uuid.uuid4()):
        pass
    assert database.connection().info.transaction_status == TransactionStatus.INTRANS

    scope.end()

    assert database.connection().info.transaction_status == TransactionStatus.IDLE
    assert not scope.in_transaction


def test_a_write_unit_of_work_that_does_not_commit_rolls_back_at_once(database) -> None:
    with _scope(database) as scope:
        with UnitOfWork(scope, None) as uow:
            uow.conn.execute("CREATE TEMP TABLE undone (n int)")

        assert not scope.in_transaction
        with UnitOfWork(scope, None) as uow:
            row = uow.conn.execute("SELECT to_regclass('pg_temp.undone') AS t").fetchone()
            assert row == {"t": None}


def test_commit_with_sends_the_last_statement_and_commit_in_one_round_trip(database) -> None:
    with _uow(database, None) as uow:
        uow.conn.execute("CREATE TEMP TABLE kept (n int)")
        uow.commit()
    with _uow(database, None) as uow:
        uow.conn.execute("INSERT INTO kept VALUES (1)")
        with counting_round_trips(uow.conn) as trips:
            cursor = uow.commit_with("INSERT INTO kept VALUES (%s) RETURNING n", (2,))

        assert cursor.fetchone() == {"n": 2}
        assert uow.committed
        assert len(trips) == 1, trips.trips
        assert trips.trips[0][-1] == "COMMIT"
    assert database.connection().info.transaction_status == TransactionStatus.IDLE
    with _uow(database, None) as uow:
        row = uow.conn.execute("SELECT array_agg(n ORDER BY n) AS ns FROM kept").fetchone()

    assert row == {"ns": [1, 2]}


def test_a_failing_commit_with_commits_nothing_and_rolls_back(
    database, caplog: pytest.LogCaptureFixture
) -> None:
    with _uow(database, None) as uow:
        uow.conn.execute("CREATE TEMP TABLE guarded (n int CHECK (n > 0))")
        uow.commit()

    # Given a write, then a last statement that fails
    with _uow(database, None) as uow, caplog.at_level(logging.WARNING, logger="psycopg"):
        uow.conn.execute("INSERT INTO guarded VALUES (1)")
        with pytest.raises(psycopg.errors.CheckViolation):
            uow.commit_with("INSERT INTO guarded VALUES (%s)", (-1,))

    # Then the statement's error is what the log has to say: not psycopg's "pipeline aborted"
    # from the skipped COMMIT, a warning on every refusal that is an expected 404 or 409
    assert [r.getMessage() for r in caplog.records if r.name == "psycopg"] == []

    # Then neither is kept, and the connection serves the next unit of work
    assert not uow.committed
    assert database.connection().info.transaction_status == TransactionStatus.IDLE
    with _uow(database, None) as uow:
        row = uow.conn.execute("SELECT count(*) AS n FROM guarded").fetchone()

    assert row == {"n": 0}


def test_a_failing_unit_of_work_ends_the_scope_s_transaction(database) -> None:
    with _scope(database, read_only=True) as scope:
        with pytest.raises(RuntimeError), UnitOfWork(scope, None):
            raise RuntimeError("boom")

        assert not scope.in_transaction
    assert database.connection().info.transaction_status == TransactionStatus.IDLE


def test_a_unit_of_work_is_usable_only_inside_its_block(database) -> None:
    with _scope(database) as scope:
        uow = UnitOfWork(scope, None)
        with uow:
            pass

        with pytest.raises(RuntimeError, match="outside its 'with' block"):
            uow.commit()
        with pytest.raises(RuntimeError, match="outside its 'with' block"):
            _ = uow.audit


class _Opening(UnitOfWork):
    """Sends a read in the same round trip as BEGIN and the tenant scoping."""

    sql: LiteralString = (
        "SELECT current_setting('app.current_tenant_id', true) AS tenant, now() AS started"
    )

    def _opening(self) -> OpeningQuery:
        return self.sql, {}


def test_the_opening_read_runs_inside_the_scoped_transaction(database) -> None:
    tenant = uuid.uuid4()

    with _scope(database, read_only=True) as scope, _Opening(scope, tenant) as uow:
        row = uow.opened.fetchone()
        assert row is not None
        assert row["tenant"] == str(tenant)
        assert row["started"] == _transaction_start(uow)


def test_a_unit_of_work_without_an_opening_read_has_no_cursor(database) -> None:
    with _uow(database, None) as uow, pytest.raises(RuntimeError, match="no opening"):
        _ = uow.opened


def test_the_opening_read_also_runs_in_a_continued_transaction(database) -> None:
    tenant = uuid.uuid4()
    with _scope(database, read_only=True) as scope:
        with UnitOfWork(scope, tenant) as first:
            started = _transaction_start(first)

        with _Opening(scope, tenant) as second:
            row = second.opened.fetchone()
            assert row is not None
            assert (row["tenant"], row["started"]) == (str(tenant), started)


def test_a_failing_opening_read_leaves_the_connection_usable(database) -> None:
    class Failing(_Opening):
        sql = "SELECT 1 / 0 AS boom"

    with (
        pytest.raises(psycopg.errors.DivisionByZero),
        _scope(database) as scope,
        Failing(scope, uuid.uuid4()),
    ):
        pass

    assert database.connection().info.transaction_status == TransactionStatus.IDLE
    with _uow(database, None) as uow:
        assert _tenant_setting(uow) == ""


def test_a_failing_opening_read_in_a_continued_transaction_ends_it(database) -> None:
    class Failing(_Opening):
        sql = "SELECT 1 / 0 AS boom"

    tenant = uuid.uuid4()
    scope = _scope(database, read_only=True)
    with UnitOfWork(scope, tenant):
        pass

    with pytest.raises(psycopg.errors.DivisionByZero), Failing(scope, tenant):
        pass

    assert not scope.in_transaction
    assert database.connection().info.transaction_status == TransactionStatus.IDLE


def test_a_timed_out_opening_read_keeps_the_live_connection(database) -> None:
    # QueryCanceled is an OperationalError, like a dead socket; only the latter is worth a
    # reconnect and a second try (the caller would otherwise wait for two timeouts).
    class Slow(_Opening):
        sql = "SELECT pg_sleep(5) AS slept"

    with _uow(database, None) as warm:
        backend = warm.conn.info.backend_pid
        warm.conn.execute("SET statement_timeout = '50ms'")
        warm.commit()

    with (
        pytest.raises(psycopg.errors.QueryCanceled),
        _scope(database) as scope,
        Slow(scope, uuid.uuid4()),
    ):
        pass

    conn = database.connection()
    assert conn.info.backend_pid == backend
    assert conn.info.transaction_status == TransactionStatus.IDLE


def test_a_get_request_runs_its_transactions_read_only(lambda_env) -> None:
    from lambdas.shared.http import create_resolver, current_scope, resolve  # noqa: PLC0415
    from tests.support.events import http_event, lambda_context  # noqa: PLC0415

    app = create_resolver()

    def write() -> dict[str, str]:
        with UnitOfWork(current_scope(app), None) as uow:
            uow.conn.execute("CREATE TEMP TABLE written (n int)")
            uow.commit()
        return {"ok": "yes"}

    app.get("/probe")(write)
    app.post("/probe")(write)

    refused = resolve(app, http_event("GET", "/probe"), lambda_context("probe"))
    allowed = resolve(app, http_event("POST", "/probe", body={}), lambda_context("probe"))

    assert refused["statusCode"] == 500
    assert allowed["statusCode"] == 200


def test_a_transaction_left_open_by_an_earlier_request_is_never_carried_on(database) -> None:
    # Given a request whose scope never ended its transaction
    abandoned = _scope(database, read_only=True)
    with UnitOfWork(abandoned, uuid.uuid4()) as first:
        started = _transaction_start(first)

    # When the next request begins, it gets a transaction of its own
    with _scope(database) as scope, UnitOfWork(scope, None) as second:
        assert _transaction_start(second) != started
        second.conn.execute("CREATE TEMP TABLE writable (n int)")  # not the old READ ONLY one
