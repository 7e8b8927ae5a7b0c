"""audit_append_v2 (migration 034): the platform chain from an unscoped transaction, and
nothing else from it; and the verifier's COPY stream on rows holding every escaped character."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from lambdas.audit.repository import AuditRepository
from lambdas.shared.audit import AuditWriter, PlatformAuditWriter, verify_chain
from lambdas.shared.constants import PLATFORM_TENANT
from tests.integration.test_audit_chain import GOLDEN_STRINGS
from tests.support.audit import scoped, tampering
from tests.support.database import TestDatabase
from tests.support.factories import create_tenant

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def owner(db: TestDatabase) -> Iterator[Conn]:
    with db.owner() as conn:
        yield conn


def _scope(conn: Conn) -> str | None:
    row = conn.execute("SELECT current_setting('app.current_tenant_id', true) AS s").fetchone()
    assert row is not None
    return str(row["s"]) if row["s"] else None


def _platform_seq(db: TestDatabase) -> int:
    with scoped(db, PLATFORM_TENANT) as conn:
        row = conn.execute(
            "SELECT coalesce(max(seq), 0) AS seq FROM alquimista_platform.audit_logs"
            " WHERE tenant_id = %s",
            (PLATFORM_TENANT,),
        ).fetchone()
    assert row is not None
    return int(row["seq"])


def test_an_unscoped_transaction_appends_to_the_platform_chain_and_stays_unscoped(
    db: TestDatabase,
) -> None:
    before = _platform_seq(db)
    with db.runtime() as conn:
        writer = PlatformAuditWriter(conn, actor_id=None, request_id="req-platform")

        first = writer.append("webhook.denied", resource_type="webhook", outcome="denied")
        second = writer.append("commercial_request.created", resource_type="commercial_request")

        assert _scope(conn) is None
        conn.commit()

    assert first is not None
    assert second is not None
    assert (first.seq, second.seq) == (before + 1, before + 2)
    with scoped(db, PLATFORM_TENANT) as conn:
        result = verify_chain(AuditRepository(conn, PLATFORM_TENANT).stream())
    assert (result.ok, result.last_seq) == (True, before + 2)


def test_a_tenant_scoped_transaction_cannot_write_the_platform_chain(
    db: TestDatabase, owner: Conn
) -> None:
    tenant = create_tenant(owner)
    with db.runtime() as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant.id),))
        writer = PlatformAuditWriter(conn, actor_id=None)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="outside its tenant"):
            writer.append("x.y", resource_type="x")


def test_an_unscoped_transaction_cannot_write_a_tenants_chain(
    db: TestDatabase, owner: Conn
) -> None:
    tenant = create_tenant(owner)
    with db.runtime() as conn:
        writer = AuditWriter(conn, tenant_id=tenant.id, actor_id=None)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="outside its tenant"):
            writer.append("x.y", resource_type="x")


def test_v1_still_refuses_the_platform_chain_from_an_unscoped_transaction(
    db: TestDatabase,
) -> None:
    with db.runtime() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(
            "SELECT * FROM alquimista_platform.audit_append_v1(%s, NULL, 'system', 'x.y', 'x',"
            " NULL, 'success', NULL, '{}'::jsonb)",
            (PLATFORM_TENANT,),
        )


def test_rows_with_escaped_characters_and_nulls_stream_and_verify(
    db: TestDatabase, owner: Conn
) -> None:
    # Given rows whose text needs every COPY escape (tab, newline, backslash, ...) and NULLs
    tenant = create_tenant(owner)
    with scoped(db, tenant.id) as conn:
        for i, text in enumerate(GOLDEN_STRINGS):
            writer = AuditWriter(
                conn,
                tenant_id=tenant.id,
                actor_id=None if i % 2 else uuid.uuid4(),
                request_id=None if i % 3 else text,
            )
            writer.append(
                "x.y",
                resource_type="x",
                resource_id=None if i % 4 == 1 else text,
                details={"text": text, "list": [text, i, None, True]},
            )

    # When the verifier streams them
    with scoped(db, tenant.id) as conn:
        streamed = list(AuditRepository(conn, tenant.id).stream())
        stored = conn.execute(
            "SELECT resource_id, request_id, actor_user_id, metadata"
            " FROM alquimista_platform.audit_logs WHERE tenant_id = %s ORDER BY seq",
            (tenant.id,),
        ).fetchall()

    # Then every field arrives as stored, and the chain verifies
    assert [(r.resource_id, r.request_id) for r in streamed] == [
        (s["resource_id"], s["request_id"]) for s in stored
    ]
    assert [r.actor_id for r in streamed] == [
        None if s["actor_user_id"] is None else str(s["actor_user_id"]) for s in stored
    ]
    assert verify_chain(streamed).ok

    # And an edit of one of those rows is found at its seq
    with tampering(owner):
        owner.execute(
            "UPDATE alquimista_platform.audit_logs SET resource_id = resource_id || E'\\t'"
            " WHERE tenant_id = %s AND seq = 7",
            (tenant.id,),
        )
    with scoped(db, tenant.id) as conn:
        result = verify_chain(AuditRepository(conn, tenant.id).stream())
    assert (result.ok, result.first_bad_seq) == (False, 7)


# ---- bounded unauthenticated denials -------------------------------------------------------


def _deny(writer: PlatformAuditWriter, source: str) -> Any:
    return writer.append(
        "webhook.denied",
        resource_type="payment_webhook",
        resource_id=source,
        outcome="denied",
        details={"provider": source},
    )


def test_a_flood_of_denials_records_at_most_the_bound_per_source_and_minute(
    db: TestDatabase,
) -> None:
    before = _platform_seq(db)
    # Given a bound of 3 per source and minute, in one transaction (one minute window: now())
    with db.runtime() as conn:
        writer = PlatformAuditWriter(conn, actor_id=None, denied_per_minute=3)

        # When 7 refusals come from one source and 2 from another
        stripe = [_deny(writer, "stripe") for _ in range(7)]
        other = [_deny(writer, "mercadopago") for _ in range(2)]
        conn.commit()

    # Then 3 are chained for the first (the last marked), the rest only counted; the other
    # source is not affected, and the chain verifies
    assert [r is not None for r in stripe] == [True] * 3 + [False] * 4
    assert all(r is not None for r in other)
    with scoped(db, PLATFORM_TENANT) as conn:
        rows = conn.execute(
            "SELECT resource_id, metadata FROM alquimista_platform.audit_logs"
            " WHERE tenant_id = %s AND seq > %s ORDER BY seq",
            (PLATFORM_TENANT, before),
        ).fetchall()
        result = verify_chain(AuditRepository(conn, PLATFORM_TENANT).stream())
    assert [r["resource_id"] for r in rows] == ["stripe"] * 3 + ["mercadopago"] * 2
    assert [r["metadata"].get("limit_reached") for r in rows[:3]] == [None, None, True]
    assert result.ok


def test_bounded_denials_are_refused_in_a_tenant_scoped_transaction(
    db: TestDatabase, owner: Conn
) -> None:
    tenant = create_tenant(owner)
    with db.runtime() as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant.id),))
        writer = PlatformAuditWriter(conn, actor_id=None)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="platform chain"):
            _deny(writer, "stripe")
