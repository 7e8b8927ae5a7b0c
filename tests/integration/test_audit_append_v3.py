"""audit_append_v3 (migration 057) and ChangeWriter: the same chain as v2 byte for byte (golden
values through the flat path and the fallback), old and new rows verifying as one chain, and a
change's audit row and outbox event written by one statement, or neither."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import rfc8785
from psycopg.types.json import Jsonb

from lambdas.audit.repository import AuditRepository
from lambdas.shared.audit import ChangeWriter, verify_chain
from lambdas.shared.constants import PLATFORM_TENANT
from lambdas.shared.events import InvalidEventPayload
from tests.integration.test_audit_chain import GOLDEN_STRINGS, GOLDEN_VALUES
from tests.support.audit import scoped
from tests.support.database import TestDatabase
from tests.support.factories import create_tenant

Conn = psycopg.Connection[dict[str, Any]]

_APPEND = """
    SELECT id, seq, row_hash, occurred_at
    FROM alquimista_platform.audit_append_{version}(%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""

# Flat objects take v3's own statement; the golden values with nested values, the fallback.
FLAT_VALUES: list[Any] = [
    {"source": "plan", "agent_id": "ação", "activated_by": None},
    {"count": -42, "ok": True, "off": False, "big": 9007199254740991, "zero": 0},
    {f"k_{i}": text for i, text in enumerate(GOLDEN_STRINGS)},
]


@pytest.fixture
def owner(db: TestDatabase) -> Iterator[Conn]:
    with db.owner() as conn:
        yield conn


def _append(
    conn: Conn, version: str, tenant: uuid.UUID, metadata: Any, text: str = "x"
) -> dict[str, Any]:
    query = _APPEND.format(version=version)
    args = (tenant, None, "user", "agent.activated", "agent", text, "success", text)
    row = conn.execute(query, (*args, Jsonb(metadata))).fetchone()
    assert row is not None
    return row


def _stored(conn: Conn, tenant: uuid.UUID) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT seq, payload_hash, metadata FROM alquimista_platform.audit_logs"
        " WHERE tenant_id = %s ORDER BY seq",
        (tenant,),
    ).fetchall()


def test_v3_hashes_every_golden_value_as_rfc8785_and_the_chain_verifies(
    db: TestDatabase, owner: Conn
) -> None:
    tenant = create_tenant(owner)
    values = [*GOLDEN_VALUES, *FLAT_VALUES]
    with scoped(db, tenant.id) as conn:
        for i, value in enumerate(values):
            _append(conn, "v3", tenant.id, value, GOLDEN_STRINGS[i % len(GOLDEN_STRINGS)])

    with scoped(db, tenant.id) as conn:
        stored = _stored(conn, tenant.id)
        result = verify_chain(AuditRepository(conn, tenant.id).stream())
    assert [bytes(row["payload_hash"]) for row in stored] == [
        hashlib.sha256(rfc8785.dumps(value)).digest() for value in values
    ]
    assert (result.ok, result.checked) == (True, len(values))


def test_rows_of_v2_and_v3_interleaved_verify_as_one_chain(db: TestDatabase, owner: Conn) -> None:
    tenant = create_tenant(owner)
    with scoped(db, tenant.id) as conn:
        for i, value in enumerate([*FLAT_VALUES, *GOLDEN_VALUES]):
            _append(conn, "v2" if i % 2 else "v3", tenant.id, value)

    with scoped(db, tenant.id) as conn:
        result = verify_chain(AuditRepository(conn, tenant.id).stream())
    assert (result.ok, result.checked) == (True, len(FLAT_VALUES) + len(GOLDEN_VALUES))


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ({"email": "a@b.c"}, "personal data"),
        ({"buyer_e_mail": "a"}, "personal data"),
        ({"Agent": "x"}, "lower snake case"),
        ({"ratio": 0.5}, "integers"),
        ({"huge": 2**60}, "integers"),
        ({"lead": {"cpf": "1"}}, "personal data"),
    ],
)
def test_v3_refuses_what_v2_refuses_with_its_message(
    db: TestDatabase, owner: Conn, metadata: dict[str, Any], fragment: str
) -> None:
    tenant = create_tenant(owner)
    with scoped(db, tenant.id) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=fragment):
            _append(conn, "v3", tenant.id, metadata)
        conn.rollback()


def test_v3_refuses_another_tenant_than_the_scope(db: TestDatabase, owner: Conn) -> None:
    a, b = create_tenant(owner), create_tenant(owner)
    with scoped(db, a.id) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="outside its tenant"):
            _append(conn, "v3", b.id, {})
        conn.rollback()


# ---- ChangeWriter: the audit row and the event in one statement ---------------------------


def _recorded(owner: Conn, tenant: uuid.UUID) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    audit = owner.execute(
        "SELECT seq, action, resource_type, resource_id, actor_user_id, request_id, metadata"
        " FROM alquimista_platform.audit_logs WHERE tenant_id = %s ORDER BY seq",
        (tenant,),
    ).fetchall()
    events = owner.execute(
        "SELECT id, event_type, aggregate_type, aggregate_id, seq, payload"
        " FROM alquimista_platform.domain_outbox WHERE tenant_id = %s ORDER BY created_at",
        (tenant,),
    ).fetchall()
    return audit, events


def _activated(agent: uuid.UUID, actor: uuid.UUID) -> dict[str, Any]:
    return {"agent_id": agent, "source": "plan", "activated_by": actor}


def test_a_change_writes_its_audit_row_and_its_event_in_one_statement(
    db: TestDatabase, owner: Conn
) -> None:
    tenant = create_tenant(owner)
    agent, actor = uuid.uuid4(), uuid.uuid4()
    with scoped(db, tenant.id) as conn:
        writer = ChangeWriter(conn, tenant_id=tenant.id, actor_id=actor, request_id="req-3")
        change = writer.record(
            "agent.activated",
            aggregate_type="agent",
            aggregate_id=str(agent),
            payload=_activated(agent, actor),
        )

    audit, events = _recorded(owner, tenant.id)
    payload = {"agent_id": str(agent), "source": "plan", "activated_by": str(actor)}
    assert audit == [
        {
            "seq": change.audit.seq,
            "action": "agent.activated",
            "resource_type": "agent",
            "resource_id": str(agent),
            "actor_user_id": actor,
            "request_id": "req-3",
            "metadata": payload,
        }
    ]
    assert events == [
        {
            "id": change.event_id,
            "event_type": "agent.activated",
            "aggregate_type": "agent",
            "aggregate_id": str(agent),
            "seq": change.event_seq,
            "payload": payload,
        }
    ]
    with scoped(db, tenant.id) as conn:
        result = verify_chain(AuditRepository(conn, tenant.id).stream())
    assert (result.ok, result.last_hash) == (True, change.audit.row_hash)


def test_a_rolled_back_change_leaves_neither_row_nor_event(db: TestDatabase, owner: Conn) -> None:
    tenant = create_tenant(owner)
    agent = uuid.uuid4()
    with db.runtime() as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant.id),))
        ChangeWriter(conn, tenant_id=tenant.id, actor_id=None).record(
            "agent.deactivated",
            aggregate_type="agent",
            aggregate_id=str(agent),
            payload={"agent_id": agent},
        )
        conn.rollback()

    assert _recorded(owner, tenant.id) == ([], [])


def test_a_change_for_another_tenant_than_the_scope_is_refused_and_writes_nothing(
    db: TestDatabase, owner: Conn
) -> None:
    a, b = create_tenant(owner), create_tenant(owner)
    agent = uuid.uuid4()
    with db.runtime() as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(a.id),))
        writer = ChangeWriter(conn, tenant_id=b.id, actor_id=None)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="outside its tenant"):
            writer.record(
                "agent.deactivated",
                aggregate_type="agent",
                aggregate_id=str(agent),
                payload={"agent_id": agent},
            )
        conn.rollback()

    assert _recorded(owner, a.id) == ([], [])
    assert _recorded(owner, b.id) == ([], [])


def test_a_payload_outside_the_catalog_is_refused_before_anything_is_sent(
    db: TestDatabase, owner: Conn
) -> None:
    tenant = create_tenant(owner)
    with scoped(db, tenant.id) as conn:
        writer = ChangeWriter(conn, tenant_id=tenant.id, actor_id=None)
        with pytest.raises(InvalidEventPayload):
            writer.record(
                "agent.activated",
                aggregate_type="agent",
                aggregate_id="x",
                payload={"agent_id": "not-a-uuid", "source": "plan"},
            )
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS

    assert _recorded(owner, tenant.id) == ([], [])


def _platform_counts(owner: Conn) -> tuple[int, int]:
    row = owner.execute(
        "SELECT (SELECT count(*) FROM alquimista_platform.audit_logs WHERE tenant_id = %(t)s)"
        " AS audit, (SELECT count(*) FROM alquimista_platform.domain_outbox"
        " WHERE tenant_id = %(t)s) AS events",
        {"t": PLATFORM_TENANT},
    ).fetchone()
    assert row is not None
    return int(row["audit"]), int(row["events"])


def test_an_unscoped_change_goes_to_the_platform_chain_and_stays_unscoped(
    db: TestDatabase, owner: Conn
) -> None:
    audit_before, events_before = _platform_counts(owner)
    agent = uuid.uuid4()
    with db.runtime() as conn:
        change = ChangeWriter(conn, tenant_id=None, actor_id=None, actor_type="anonymous").record(
            "agent.deactivated",
            aggregate_type="agent",
            aggregate_id=str(agent),
            payload={"agent_id": agent},
        )
        scope = conn.execute("SELECT current_setting('app.current_tenant_id', true) AS s")
        assert (scope.fetchone() or {}).get("s") in ("", None)
        conn.commit()

    assert _platform_counts(owner) == (audit_before + 1, events_before + 1)
    with scoped(db, PLATFORM_TENANT) as conn:
        result = verify_chain(AuditRepository(conn, PLATFORM_TENANT).stream())
    assert (result.ok, result.last_seq) == (True, change.audit.seq)
