"""CommitTimeAuditWriter: a request's appends travel with its COMMIT in one round trip, and
commit or fail with it; and migration 040's shared chain-writing body is the owner's alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from lambdas.audit.repository import AuditRepository
from lambdas.shared.audit import (
    AuditWriter,
    CommitTimeAuditWriter,
    PlatformAuditWriter,
    verify_chain,
)
from lambdas.shared.db import set_tenant
from tests.support.audit import scoped
from tests.support.database import TestDatabase
from tests.support.factories import create_tenant
from tests.support.round_trips import counting_round_trips

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def tenant(db: TestDatabase) -> uuid.UUID:
    with db.owner() as owner:
        tenant_id: uuid.UUID = create_tenant(owner).id
    return tenant_id


@pytest.fixture
def request_conn(db: TestDatabase) -> Iterator[Conn]:
    """A connection as the request scope holds it: autocommit, transactions begun explicitly."""
    with psycopg.connect(db.runtime_url, row_factory=psycopg.rows.dict_row) as conn:
        conn.autocommit = True
        yield conn


def _rows(db: TestDatabase, tenant_id: uuid.UUID) -> int:
    with scoped(db, tenant_id) as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM alquimista_platform.audit_logs WHERE tenant_id = %s",
            (tenant_id,),
        ).fetchone()
    assert row is not None
    return int(row["n"])


def test_appends_are_sent_with_the_commit_in_one_round_trip(
    db: TestDatabase, request_conn: Conn, tenant: uuid.UUID
) -> None:
    request_conn.execute("BEGIN")
    set_tenant(request_conn, tenant)
    writer = CommitTimeAuditWriter(AuditWriter(request_conn, tenant_id=tenant, actor_id=None))

    with counting_round_trips(request_conn) as trips:
        writer.append("agent.activated", resource_type="agent", details={"n": 1})
        writer.append("agent.deactivated", resource_type="agent", details={"n": 2})
        records = writer.commit(request_conn)

    assert len(trips) == 1
    assert trips.trips[0][-1] == "COMMIT"
    assert [r.seq for r in records if r is not None] == [1, 2]
    with scoped(db, tenant) as conn:
        assert verify_chain(AuditRepository(conn, tenant).stream()).checked == 2


def test_an_append_refused_at_commit_fails_the_commit_and_writes_nothing(
    db: TestDatabase, request_conn: Conn, tenant: uuid.UUID
) -> None:
    request_conn.execute("BEGIN")
    set_tenant(request_conn, tenant)
    writer = CommitTimeAuditWriter(AuditWriter(request_conn, tenant_id=tenant, actor_id=None))
    writer.append("agent.activated", resource_type="agent", details={"n": 1})
    writer.append("lead.created", resource_type="lead", details={"email": "x@example.com"})

    with pytest.raises(psycopg.errors.InvalidParameterValue, match="personal data"):
        writer.commit(request_conn)
    request_conn.rollback()

    assert _rows(db, tenant) == 0


def test_nothing_pending_is_a_plain_commit(
    db: TestDatabase, request_conn: Conn, tenant: uuid.UUID
) -> None:
    request_conn.execute("BEGIN")
    writer = CommitTimeAuditWriter(AuditWriter(request_conn, tenant_id=tenant, actor_id=None))

    assert writer.commit(request_conn) == []
    assert request_conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_suppressed_platform_denial_has_no_record(request_conn: Conn) -> None:
    request_conn.execute("BEGIN")
    set_tenant(request_conn, None)
    writer = CommitTimeAuditWriter(
        PlatformAuditWriter(request_conn, actor_id=None, denied_per_minute=1)
    )
    source = f"test-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        writer.append("webhook.denied", resource_type="webhook", resource_id=source,
                      outcome="denied", details={})  # fmt: skip

    first, second = writer.commit(request_conn)

    assert first is not None
    assert second is None


def test_the_shared_chain_body_is_not_callable_by_the_runtime_role(
    db: TestDatabase, tenant: uuid.UUID
) -> None:
    with scoped(db, tenant) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(
            """
            SELECT * FROM alquimista_platform.audit_chain_write_v1(
                %s, NULL, 'user', 'forged', 'x', NULL, 'success', NULL, '{}'::jsonb,
                sha256('{}'::bytea))
            """,
            (tenant,),
        )
