"""audit_append_v3 (migration 052): v2's append in one statement. Its rows interleave with v2's
in one chain, it refuses what v2 refuses with v2's errors, it waits for a tenant's head lock and
then stamps the row after the holder's commit, and it keeps the head's updated_at itself."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from lambdas.audit.repository import AuditRepository
from lambdas.shared.audit import AuditWriter, payload_hash, verify_chain
from tests.support.audit import scoped
from tests.support.database import TestDatabase
from tests.support.factories import create_tenant

Conn = psycopg.Connection[dict[str, Any]]

_CALL = """
    SELECT id, seq, row_hash, occurred_at
    FROM alquimista_platform.{function}(%s, %s, 'user', 'x.y', 'x', %s, 'success', 'req', %s)
"""


@pytest.fixture
def owner(db: TestDatabase) -> Iterator[Conn]:
    with db.owner() as conn:
        yield conn


def _append(conn: Conn, function: str, tenant: uuid.UUID, details: Any) -> dict[str, Any]:
    row = conn.execute(
        _CALL.format(function=function),
        (tenant, None, "r", Jsonb(details)),
    ).fetchone()
    assert row is not None
    return row


def test_v2_and_v3_rows_interleave_in_one_chain_that_verifies(
    db: TestDatabase, owner: Conn
) -> None:
    # Given one tenant's chain written alternately by v2 and v3, same metadata
    tenant = create_tenant(owner)
    details = {"agent_id": str(uuid.uuid4()), "n": 7, "tags": ["a", None, True]}
    with scoped(db, tenant.id) as conn:
        rows = [
            _append(conn, function, tenant.id, details)
            for function in ("audit_append_v3", "audit_append_v2") * 3
        ]

    # Then seq runs on without a gap, each row hashes the same payload, and the chain verifies
    assert [row["seq"] for row in rows] == [1, 2, 3, 4, 5, 6]
    with scoped(db, tenant.id) as conn:
        hashes = {
            bytes(r["payload_hash"])
            for r in conn.execute("SELECT payload_hash FROM alquimista_platform.audit_logs")
        }
        result = verify_chain(AuditRepository(conn, tenant.id).stream())
    assert hashes == {payload_hash(details)}
    assert (result.ok, result.last_seq, result.last_hash) == (
        True,
        6,
        bytes(rows[-1]["row_hash"]).hex(),
    )


def test_the_head_keeps_the_last_rows_time_whichever_version_appended(
    db: TestDatabase, owner: Conn
) -> None:
    tenant = create_tenant(owner)
    with scoped(db, tenant.id) as conn:
        v3 = _append(conn, "audit_append_v3", tenant.id, {})
        head = AuditRepository(conn, tenant.id).head()
    # v3 sets updated_at itself: the head's time is its row's
    assert head is not None
    assert (head.seq, head.at) == (v3["seq"], v3["occurred_at"])

    with scoped(db, tenant.id) as conn:
        _append(conn, "audit_append_v2", tenant.id, {})
        started = conn.execute("SELECT now() AS at").fetchone()
        head = AuditRepository(conn, tenant.id).head()
    # v2 leaves updated_at alone, so the trigger still sets it (to its transaction's start)
    assert head is not None
    assert started is not None
    assert (head.seq, head.at) == (2, started["at"])


@pytest.mark.parametrize(
    ("details", "scope_other_tenant"),
    [
        ({"email": "a@b.c"}, False),
        ({"lead": {"cpf": "123"}}, False),
        ({"items": [{"full_name": "x"}]}, False),
        ({"Agent": "x"}, False),
        ({"ratio": 0.5}, False),
        ({"huge": 2**60}, False),
        ([1, 2], False),
        ({}, True),
    ],
)
def test_v3_refuses_what_v2_refuses_with_the_same_error(
    db: TestDatabase, owner: Conn, details: Any, scope_other_tenant: bool
) -> None:
    tenant, other = create_tenant(owner), create_tenant(owner)
    errors = []
    for function in ("audit_append_v2", "audit_append_v3"):
        with db.runtime() as conn:
            scope = other.id if scope_other_tenant else tenant.id
            conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(scope),))
            with pytest.raises(psycopg.errors.DatabaseError) as raised:
                _append(conn, function, tenant.id, details)
            errors.append((raised.value.sqlstate, raised.value.diag.message_primary))
    assert errors[0] == errors[1]
    assert errors[0][0] in {"22023", "42501"}  # invalid_parameter_value, insufficient_privilege
    with scoped(db, tenant.id) as conn:
        row = conn.execute("SELECT count(*) AS n FROM alquimista_platform.audit_logs").fetchone()
    assert row == {"n": 0}


def test_an_append_that_waited_for_the_head_lock_is_stamped_after_the_holders_commit(
    db: TestDatabase, owner: Conn
) -> None:
    tenant = create_tenant(owner)
    waiting: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    with db.runtime() as holder:
        # Given an open transaction holding the tenant's head lock
        holder.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant.id),))
        first = AuditWriter(holder, tenant_id=tenant.id, actor_id=None).append(
            "hold", resource_type="x"
        )

        # When a second append starts and blocks on that lock
        def second() -> None:
            try:
                with scoped(db, tenant.id) as conn:
                    waiting.append(_append(conn, "audit_append_v3", tenant.id, {}))
            except BaseException as error:  # reported by the main thread
                errors.append(error)

        thread = threading.Thread(target=second)
        thread.start()
        blocked = False
        with db.owner() as watcher:
            for _ in range(10_000):
                row = watcher.execute(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE %s = ANY"
                    " (pg_blocking_pids(pid))",
                    (holder.info.backend_pid,),
                ).fetchone()
                if row is not None and row["n"]:
                    blocked = True
                    break
        assert blocked, "the second append never waited for the head lock"
        released = holder.execute("SELECT clock_timestamp() AS at").fetchone()
        holder.commit()
        thread.join()

    # Then it took the next seq, and its time is read after the lock was released
    assert errors == []
    assert released is not None
    assert waiting[0]["seq"] == first.seq + 1
    assert waiting[0]["occurred_at"] > released["at"]
    with scoped(db, tenant.id) as conn:
        assert verify_chain(AuditRepository(conn, tenant.id).stream()).ok
