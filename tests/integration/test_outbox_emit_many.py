"""OutboxWriter.emit_many through outbox_append_many_v1 (migration 059) as the runtime role: the
rules of outbox_append_v1 for a batch in one statement."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest

from lambdas.shared.db import Database, UnitOfWork
from lambdas.shared.events import UnknownEvent
from lambdas.shared.outbox import OutboxWriter
from lambdas.shared.scope import EventDraft, RequestScope
from tests.support.database import TestDatabase
from tests.support.factories import create_tenant
from tests.support.outbox import deactivated, emit, runtime_database


@pytest.fixture
def tenants(db: TestDatabase) -> tuple[uuid.UUID, uuid.UUID]:
    with db.owner() as conn:
        return create_tenant(conn).id, create_tenant(conn).id


def _rows(db: TestDatabase) -> list[dict[str, Any]]:
    with db.owner() as conn:
        conn.execute("SET row_security = off")
        return conn.execute(
            "SELECT * FROM alquimista_platform.domain_outbox ORDER BY created_at, seq"
        ).fetchall()


def _off(agent: uuid.UUID) -> EventDraft:
    return EventDraft("agent.deactivated", "agent", str(agent), {"agent_id": str(agent)})


def _emit_many(
    db: TestDatabase,
    tenant: uuid.UUID | None,
    events: list[EventDraft],
    *,
    writer_for: uuid.UUID | None = None,
    database: Database | None = None,
) -> list[uuid.UUID]:
    """Emit ``events`` in one committed transaction scoped to ``tenant`` (through a writer for
    ``writer_for`` when given)."""
    runtime = database or runtime_database(db)
    try:
        with UnitOfWork(RequestScope(lambda: runtime), tenant) as uow:
            writer = OutboxWriter(uow.conn, tenant_id=writer_for or tenant)
            ids = writer.emit_many(events)
            assert writer.emitted == ids
            uow.commit()
        return ids
    finally:
        if database is None:
            runtime.close()


def test_a_batch_continues_each_aggregate_s_seq_in_the_sequence_s_order(
    db: TestDatabase, tenants
) -> None:
    # Given an aggregate with one event already
    tenant, _ = tenants
    first, second = uuid.uuid4(), uuid.uuid4()
    database = runtime_database(db)
    emit(database, tenant, deactivated(first))
    database.close()

    # When a batch interleaves it with a new aggregate
    batch = [_off(second), _off(first), _off(second), _off(first), _off(second)]
    ids = _emit_many(db, tenant, batch)

    # Then the rows are the batch's ids, in its order, with gap-free seqs per aggregate
    rows = _rows(db)[1:]
    assert [r["id"] for r in rows] == ids
    assert [(r["aggregate_id"], r["seq"]) for r in rows] == [
        (str(second), 1),
        (str(first), 2),
        (str(second), 2),
        (str(first), 3),
        (str(second), 3),
    ]
    assert all(r["tenant_id"] == tenant and r["status"] == "pending" for r in rows)
    assert rows[1]["payload"] == {"agent_id": str(first)}
    assert len({r["created_at"] for r in rows}) == len(rows)


def test_an_empty_batch_appends_nothing(db: TestDatabase, tenants) -> None:
    assert _emit_many(db, tenants[0], []) == []
    assert _rows(db) == []


def test_a_batch_for_another_tenant_is_refused_whole(db: TestDatabase, tenants) -> None:
    tenant, other = tenants

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _emit_many(db, tenant, [_off(uuid.uuid4())], writer_for=other)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _emit_many(db, None, [_off(uuid.uuid4())], writer_for=tenant)

    assert _rows(db) == []


def test_an_event_missing_from_the_catalog_stops_the_batch_before_any_append(
    db: TestDatabase, tenants
) -> None:
    bad = EventDraft("agent.exploded", "agent", "a", {"agent_id": str(uuid.uuid4())})

    with pytest.raises(UnknownEvent):
        _emit_many(db, tenants[0], [_off(uuid.uuid4()), bad])

    assert _rows(db) == []


@pytest.mark.parametrize(
    ("aggregate_types", "payloads"),
    [
        (["agent"], '[{"agent_id": "a"}, {"agent_id": "b"}]'),  # fewer aggregates than ids
        (["agent", "agent"], '[{"agent_id": "a"}]'),  # fewer payloads than ids
        (["agent", "agent"], '{"agent_id": "a"}'),  # payloads not an array
    ],
)
def test_arrays_of_different_lengths_are_refused(
    db: TestDatabase, tenants, aggregate_types: list[str], payloads: str
) -> None:
    tenant, _ = tenants
    with db.runtime() as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant),))
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute(
                """
                SELECT * FROM alquimista_platform.outbox_append_many_v1(
                    %s::uuid[], %s, %s::text[], %s::text[], %s::text[], %s::integer[], %s::jsonb)
                """,
                (
                    [uuid.uuid4(), uuid.uuid4()],
                    tenant,
                    aggregate_types,
                    ["a", "b"],
                    ["agent.deactivated"] * 2,
                    [1, 1],
                    payloads,
                ),
            )
    assert _rows(db) == []


def test_a_rolled_back_batch_leaves_no_event(db: TestDatabase, tenants) -> None:
    tenant, _ = tenants
    database = runtime_database(db)

    def service_that_fails_after_emitting() -> None:
        with UnitOfWork(RequestScope(lambda: database), tenant) as uow:
            OutboxWriter(uow.conn, tenant_id=tenant).emit_many([_off(uuid.uuid4())])
            raise RuntimeError("the service failed after emitting")

    with pytest.raises(RuntimeError):
        service_that_fails_after_emitting()

    database.close()
    assert _rows(db) == []


def test_concurrent_batches_and_single_events_of_one_aggregate_get_gap_free_seqs(
    db: TestDatabase, tenants
) -> None:
    tenant, _ = tenants
    agent = uuid.uuid4()
    errors: list[BaseException] = []

    def write(batch: bool) -> None:
        database = runtime_database(db)
        try:
            for _ in range(3):
                if batch:
                    events = [_off(agent), _off(uuid.uuid4()), _off(agent)]
                    _emit_many(db, tenant, events, database=database)
                else:
                    emit(database, tenant, deactivated(agent))
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            database.close()

    threads = [threading.Thread(target=write, args=(n % 2 == 0,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    rows = [r for r in _rows(db) if r["aggregate_id"] == str(agent)]
    assert sorted(r["seq"] for r in rows) == list(range(1, 2 * 3 * 2 + 2 * 3 + 1))
    by_seq = sorted(rows, key=lambda r: r["seq"])
    assert [r["created_at"] for r in by_seq] == sorted(r["created_at"] for r in rows)


def test_batches_naming_two_aggregates_in_opposite_orders_do_not_deadlock(
    db: TestDatabase, tenants
) -> None:
    """Each batch locks its aggregates in key order, not in the batch's order: two batches of
    [a, b] and [b, a] racing each other both commit (no deadlock) with gap-free seqs."""
    tenant, _ = tenants
    first, second = uuid.uuid4(), uuid.uuid4()
    rounds = 8
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(order: tuple[uuid.UUID, uuid.UUID]) -> None:
        database = runtime_database(db)
        try:
            for _ in range(rounds):
                start.wait(timeout=30)
                _emit_many(db, tenant, [_off(order[0]), _off(order[1])], database=database)
        except BaseException as error:  # surfaced below
            errors.append(error)
            start.abort()
        finally:
            database.close()

    threads = [
        threading.Thread(target=write, args=((first, second),)),
        threading.Thread(target=write, args=((second, first),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    for agent in (first, second):
        seqs = sorted(r["seq"] for r in _rows(db) if r["aggregate_id"] == str(agent))
        assert seqs == list(range(1, 2 * rounds + 1))
