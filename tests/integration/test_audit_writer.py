"""The request's audit writer: one statement per append in the request's transaction (it
commits or fails with it), the platform chain's bounded denials, and what migrations 040/041
keep for the owner alone or rely on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from lambdas.audit.repository import AuditRepository
from lambdas.shared.audit import AuditWriter, PlatformAuditWriter, verify_chain
from lambdas.shared.db import set_tenant
from tests.support.audit import append_audit, scoped
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


def test_each_append_is_one_round_trip_and_commits_with_the_transaction(
    db: TestDatabase, request_conn: Conn, tenant: uuid.UUID
) -> None:
    request_conn.execute("BEGIN")
    set_tenant(request_conn, tenant)
    writer = AuditWriter(request_conn, tenant_id=tenant, actor_id=None)

    with counting_round_trips(request_conn) as trips:
        first = writer.append("agent.activated", resource_type="agent", details={"n": 1})
        second = writer.append("agent.deactivated", resource_type="agent", details={"n": 2})
    assert _rows(db, tenant) == 0  # not visible before the COMMIT
    request_conn.commit()

    assert len(trips) == 2
    assert (first.seq, second.seq) == (1, 2)
    with scoped(db, tenant) as conn:
        result = verify_chain(AuditRepository(conn, tenant).stream())
    assert (result.ok, result.checked, result.last_hash) == (True, 2, second.row_hash)


def test_a_refused_append_fails_the_transaction_and_writes_nothing(
    db: TestDatabase, request_conn: Conn, tenant: uuid.UUID
) -> None:
    request_conn.execute("BEGIN")
    set_tenant(request_conn, tenant)
    writer = AuditWriter(request_conn, tenant_id=tenant, actor_id=None)
    writer.append("agent.activated", resource_type="agent", details={"n": 1})

    with pytest.raises(psycopg.errors.InvalidParameterValue, match="personal data"):
        writer.append("lead.created", resource_type="lead", details={"email": "x@example.com"})
    request_conn.rollback()

    assert _rows(db, tenant) == 0


def test_a_suppressed_platform_denial_has_no_record(request_conn: Conn) -> None:
    request_conn.execute("BEGIN")
    set_tenant(request_conn, None)
    writer = PlatformAuditWriter(request_conn, actor_id=None, denied_per_minute=1)
    source = f"test-{uuid.uuid4().hex[:8]}"

    first, second = (
        writer.append(
            "webhook.denied", resource_type="webhook", resource_id=source, outcome="denied"
        )
        for _ in range(2)
    )
    request_conn.rollback()

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


def test_a_tenant_with_audit_rows_cannot_be_deleted(db: TestDatabase, tenant: uuid.UUID) -> None:
    # Migration 041 dropped the rows' own foreign key: the tenant's head row, written with
    # every append, holds the tenant instead.
    append_audit(db, tenant, 1, actor_id=uuid.uuid4())

    with db.owner() as owner, pytest.raises(psycopg.errors.RestrictViolation, match="audit_heads"):
        owner.execute("DELETE FROM alquimista_platform.tenants WHERE id = %s", (tenant,))
