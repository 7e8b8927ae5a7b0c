from __future__ import annotations

import random
import threading
import uuid
from typing import Any

import psycopg
import pytest

from lambdas.outbox import service
from lambdas.outbox.service import RelayOptions
from lambdas.shared.constants import PLATFORM_TENANT
from lambdas.shared.db import UnitOfWork
from lambdas.shared.events import InvalidEventPayload, UnknownEvent
from lambdas.shared.outbox import OutboxWriter
from lambdas.shared.scope import RequestScope
from tests.support.database import TestDatabase
from tests.support.factories import create_tenant
from tests.support.outbox import (
    RecordingPublisher,
    activated,
    deactivated,
    emit,
    relay_uow,
    runtime_database,
)

FAST = RelayOptions(batch_size=50, claim_s=30, max_attempts=3, time_budget_s=30)


@pytest.fixture
def tenants(db: TestDatabase) -> tuple[uuid.UUID, uuid.UUID]:
    with db.owner() as conn:
        return create_tenant(conn).id, create_tenant(conn).id


def _rows(db: TestDatabase) -> list[dict[str, Any]]:
    with db.owner() as conn:
        conn.execute("SET row_security = off")
        return conn.execute(
            "SELECT * FROM alquimista_platform.domain_outbox ORDER BY created_at"
        ).fetchall()


def test_an_event_is_written_with_its_aggregate_seq_in_the_callers_transaction(
    db: TestDatabase, tenants
) -> None:
    tenant, _ = tenants
    database = runtime_database(db)
    agent = uuid.uuid4()

    first, second = emit(database, tenant, activated(agent), deactivated(agent))

    rows = _rows(db)
    assert [(r["id"], r["seq"], r["status"]) for r in rows] == [
        (first, 1, "pending"),
        (second, 2, "pending"),
    ]
    assert rows[0]["tenant_id"] == tenant
    assert rows[0]["payload"] == {"agent_id": str(agent), "source": "plan", "activated_by": None}


def test_a_rolled_back_transaction_leaves_no_event(db: TestDatabase, tenants) -> None:
    tenant, _ = tenants
    database = runtime_database(db)

    def service_that_fails_after_emitting() -> None:
        with UnitOfWork(RequestScope(lambda: database), tenant) as uow:
            OutboxWriter(uow.conn, tenant_id=tenant).emit(
                "agent.deactivated",
                aggregate_type="agent",
                aggregate_id=str(uuid.uuid4()),
                payload={"agent_id": str(uuid.uuid4())},
            )
            raise RuntimeError("the service failed after emitting")

    with pytest.raises(RuntimeError):
        service_that_fails_after_emitting()

    assert _rows(db) == []


def test_an_event_for_another_tenant_is_refused(db: TestDatabase, tenants) -> None:
    tenant, other = tenants
    database = runtime_database(db)

    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege),
        UnitOfWork(RequestScope(lambda: database), tenant) as uow,
    ):
        OutboxWriter(uow.conn, tenant_id=other).emit(
            "agent.deactivated",
            aggregate_type="agent",
            aggregate_id="a",
            payload={"agent_id": str(uuid.uuid4())},
        )
    assert _rows(db) == []


def test_a_tenantless_transaction_emits_platform_events_only(db: TestDatabase, tenants) -> None:
    tenant, _ = tenants
    database = runtime_database(db)
    request = uuid.uuid4()

    emit(
        database,
        None,
        (
            "commercial_request.created",
            "commercial_request",
            str(request),
            {"commercial_request_id": str(request), "plan_id": None, "subnucleo_ids": []},
        ),
    )
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege),
        UnitOfWork(RequestScope(lambda: database), None) as uow,
    ):
        OutboxWriter(uow.conn, tenant_id=tenant).emit(
            "agent.deactivated",
            aggregate_type="agent",
            aggregate_id="a",
            payload={"agent_id": str(uuid.uuid4())},
        )

    assert [r["tenant_id"] for r in _rows(db)] == [PLATFORM_TENANT]


@pytest.mark.parametrize(
    ("name", "aggregate", "payload", "error"),
    [
        ("agent.exploded", "agent", {}, UnknownEvent),
        ("agent.deactivated", "agent", {"agent_id": "not-a-uuid"}, InvalidEventPayload),
        ("agent.deactivated", "agent", {"agent_id": str(uuid.uuid4()), "email": "a@b.c"},
         InvalidEventPayload),
        ("agent.deactivated", "trial", {"agent_id": str(uuid.uuid4())}, InvalidEventPayload),
    ],
)  # fmt: skip
def test_emit_validates_against_the_catalog(db: TestDatabase, tenants, name, aggregate, payload,
                                            error) -> None:  # fmt: skip
    tenant, _ = tenants
    with (
        pytest.raises(error),
        UnitOfWork(RequestScope(lambda: runtime_database(db)), tenant) as uow,
    ):
        OutboxWriter(uow.conn, tenant_id=tenant).emit(
            name, aggregate_type=aggregate, aggregate_id="a", payload=payload
        )


def test_the_runtime_role_sees_only_its_tenants_events(db: TestDatabase, tenants) -> None:
    tenant, other = tenants
    database = runtime_database(db)
    emit(database, tenant, activated())
    emit(database, other, activated())

    with UnitOfWork(RequestScope(lambda: database), tenant) as uow:
        seen = uow.conn.execute(
            "SELECT tenant_id FROM alquimista_platform.domain_outbox"
        ).fetchall()
    with UnitOfWork(RequestScope(lambda: database), None) as uow:
        unscoped = uow.conn.execute("SELECT 1 FROM alquimista_platform.domain_outbox").fetchall()

    assert [row["tenant_id"] for row in seen] == [tenant]
    assert unscoped == []


def test_concurrent_writers_of_one_aggregate_get_gap_free_seqs(db: TestDatabase, tenants) -> None:
    tenant, _ = tenants
    agent = uuid.uuid4()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            database = runtime_database(db)
            for _ in range(5):
                emit(database, tenant, deactivated(agent))
            database.close()
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=write) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    rows = _rows(db)
    assert sorted(r["seq"] for r in rows) == list(range(1, 31))
    # seq order is commit order: a later seq was never created before an earlier one
    by_seq = sorted(rows, key=lambda r: r["seq"])
    assert [r["created_at"] for r in by_seq] == sorted(r["created_at"] for r in rows)


def test_the_relay_publishes_and_marks_every_due_event(db: TestDatabase, tenants) -> None:
    tenant, other = tenants
    database = runtime_database(db)
    ids = emit(database, tenant, activated(), activated()) + emit(database, other, activated())
    publisher = RecordingPublisher()

    report = service.relay(relay_uow(database), publisher, FAST)

    assert report.published == 3
    assert sorted(e.id for e in publisher.published) == sorted(ids)
    assert {r["status"] for r in _rows(db)} == {"published"}
    detail = publisher.published[0].detail()
    assert set(detail) == {
        "event_id", "event_type", "version", "tenant_id", "aggregate", "occurred_at", "payload"
    }  # fmt: skip
    assert detail["aggregate"]["seq"] == 1


def test_two_relays_never_claim_the_same_event(db: TestDatabase, tenants) -> None:
    tenant, _ = tenants
    database = runtime_database(db)
    for _ in range(10):
        emit(database, tenant, *(activated() for _ in range(40)))
    claimed: list[list[uuid.UUID]] = [[], []]
    barrier = threading.Barrier(2)

    def claim_all(index: int) -> None:
        own = runtime_database(db)
        uow_factory = relay_uow(own)
        barrier.wait()
        while True:
            with uow_factory() as uow:
                batch = uow.relay.claim(limit=7, claim_s=60)
                uow.commit()
            if not batch:
                break
            claimed[index] += [event.id for event in batch]
        own.close()

    threads = [threading.Thread(target=claim_all, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    everything = claimed[0] + claimed[1]
    assert len(everything) == 400
    assert len(set(everything)) == 400
    assert claimed[0]
    assert claimed[1]


def test_a_relay_killed_between_publish_and_mark_publishes_the_same_id_again(
    db: TestDatabase, tenants, owner_conn
) -> None:
    tenant, _ = tenants
    database = runtime_database(db)
    (event_id,) = emit(database, tenant, activated())

    class Killed(Exception):
        pass

    first = RecordingPublisher()

    class DiesAfterPublish:
        def publish(self, events):
            first.publish(events)
            raise Killed

    with pytest.raises(Killed):
        service.relay(relay_uow(database), DiesAfterPublish(), FAST)
    assert _rows(db)[0]["status"] == "inflight"
    # the claim expires
    owner_conn.execute(
        "UPDATE alquimista_platform.domain_outbox SET claimed_until = now() - interval '1 s'"
    )
    second = RecordingPublisher()
    report = service.relay(relay_uow(database), second, FAST)

    assert report.reset_expired == 1
    assert [e.id for e in first.published] == [event_id]
    assert [e.id for e in second.published] == [event_id]
    assert second.published[0].attempts == 2
    assert _rows(db)[0]["status"] == "published"


def test_a_poison_event_ends_dead_and_stops_holding_its_aggregate(
    db: TestDatabase, tenants, owner_conn
) -> None:
    tenant, _ = tenants
    database = runtime_database(db)
    agent = uuid.uuid4()
    poison, after = emit(database, tenant, activated(agent), deactivated(agent))
    publisher = RecordingPublisher(fail=lambda e: "InternalFailure" if e.id == poison else None)

    for _ in range(FAST.max_attempts):
        service.relay(relay_uow(database), publisher, FAST, rng=random.Random(1))
        owner_conn.execute(  # skip the backoff
            "UPDATE alquimista_platform.domain_outbox SET available_at = now() "
            "WHERE status = 'pending'"
        )

    rows = {r["id"]: r for r in _rows(db)}
    assert rows[poison]["status"] == "dead"
    assert rows[poison]["attempts"] == FAST.max_attempts
    assert rows[poison]["last_error"].startswith("InternalFailure")
    assert rows[after]["status"] == "published"
    assert [e.id for e in publisher.published] == [after]


def test_a_permanent_error_is_dead_at_once(db: TestDatabase, tenants) -> None:
    tenant, _ = tenants
    database = runtime_database(db)
    (_event_id,) = emit(database, tenant, activated())

    report = service.relay(
        relay_uow(database), RecordingPublisher(fail=lambda _e: "MalformedDetail"), FAST
    )

    assert report.dead == 1
    assert _rows(db)[0]["status"] == "dead"


def test_an_aggregate_publishes_in_seq_order_when_its_first_publish_fails(
    db: TestDatabase, tenants, owner_conn
) -> None:
    tenant, _ = tenants
    database = runtime_database(db)
    agent = uuid.uuid4()
    ids = emit(database, tenant, activated(agent), deactivated(agent), activated(agent))
    failed_once: set[uuid.UUID] = set()

    def fail_first_try(event) -> str | None:
        if event.id == ids[0] and event.id not in failed_once:
            failed_once.add(event.id)
            return "ThrottlingException"
        return None

    publisher = RecordingPublisher(fail=fail_first_try)
    report = service.relay(relay_uow(database), publisher, FAST, rng=random.Random(2))

    # the first failed and backs off; nothing after it went out
    assert report.retried == 1
    assert publisher.published == []
    first = _rows(db)[0]
    assert first["status"] == "pending"
    assert first["available_at"] > first["created_at"]

    owner_conn.execute("UPDATE alquimista_platform.domain_outbox SET available_at = now()")
    service.relay(relay_uow(database), publisher, FAST)

    assert [e.id for e in publisher.published] == ids
    assert [e.seq for e in publisher.published] == [1, 2, 3]


def test_expired_inflight_claims_are_reset_and_exhausted_ones_die(
    db: TestDatabase, tenants, owner_conn
) -> None:
    tenant, _ = tenants
    database = runtime_database(db)
    fresh, exhausted, live = emit(database, tenant, activated(), activated(), activated())
    with relay_uow(database)() as uow:
        assert len(uow.relay.claim(limit=10, claim_s=60)) == 3
        uow.commit()
    owner_conn.execute(
        "UPDATE alquimista_platform.domain_outbox SET claimed_until = now() - interval '1 s' "
        "WHERE id = ANY(%s)",
        ([fresh, exhausted],),
    )
    owner_conn.execute(
        "UPDATE alquimista_platform.domain_outbox SET attempts = 3 WHERE id = %s", (exhausted,)
    )

    with relay_uow(database)() as uow:
        reset = uow.relay.reset_expired(max_attempts=3)
        uow.commit()

    assert reset == (1, 1)
    rows = {r["id"]: r["status"] for r in _rows(db)}
    assert rows == {fresh: "pending", exhausted: "dead", live: "inflight"}


def test_stats_report_the_backlog(db: TestDatabase, tenants) -> None:
    tenant, _ = tenants
    database = runtime_database(db)
    emit(database, tenant, activated(), activated())

    stats = service.stats(relay_uow(database))

    assert (stats.pending, stats.inflight, stats.dead) == (2, 0, 0)
    assert stats.oldest_pending_at is not None
