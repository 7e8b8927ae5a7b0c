"""The chain verified in parallel seq ranges on PostgreSQL: each range in a forked process on
its own runtime-role connection, in the snapshot of the verifying transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from lambdas.audit import repository, service
from lambdas.audit.models import VerifyResponse
from lambdas.audit.repository import AuditRepository, RangeVerificationFailed
from lambdas.shared.audit import AuditRow, RangeCheck, record_json, row_hash
from tests.support.audit import append_audit, scoped, tampering
from tests.support.database import TestDatabase
from tests.support.factories import create_tenant

Conn = psycopg.Connection[dict[str, Any]]
ROWS = 9  # three ranges of three: 1-3, 4-6, 7-


class _Uow:
    def __init__(self, log: AuditRepository) -> None:
        self.log = log
        self.heads = None


@pytest.fixture
def owner(db: TestDatabase) -> Iterator[Conn]:
    with db.owner() as conn:
        yield conn


@pytest.fixture
def tenant(db: TestDatabase, owner: Conn) -> uuid.UUID:
    tenant_id: uuid.UUID = create_tenant(owner).id
    append_audit(db, tenant_id, ROWS, actor_id=uuid.uuid4())
    return tenant_id


def verify(db: TestDatabase, tenant_id: uuid.UUID, **kwargs: Any) -> VerifyResponse:
    with scoped(db, tenant_id) as conn:

        @contextmanager
        def uow() -> Iterator[_Uow]:
            yield _Uow(AuditRepository(conn, tenant_id))

        return service.verify_tenant_chain(
            uow,  # type: ignore[arg-type]
            None,
            workers=3,
            min_range_rows=1,
            **kwargs,
        )


def test_an_untouched_chain_verifies_in_three_processes(
    db: TestDatabase, tenant: uuid.UUID
) -> None:
    result = verify(db, tenant)

    assert (result.ok, result.checked, result.last_seq) == (True, ROWS, ROWS)


def test_a_range_reads_its_starting_hash_and_cannot_start_without_it(
    db: TestDatabase, owner: Conn, tenant: uuid.UUID
) -> None:
    with tampering(owner):
        owner.execute(
            "DELETE FROM alquimista_platform.audit_logs WHERE tenant_id = %s AND seq = 6",
            (tenant,),
        )

    with scoped(db, tenant) as conn:
        results = AuditRepository(conn, tenant).verify_ranges(
            [RangeCheck(4, 5, None), RangeCheck(7, None, None)]
        )

    assert results[0] is not None
    assert (results[0].ok, results[0].last_seq) == (True, 5)
    assert results[1] is None  # row 6, which it starts from, is gone


@pytest.mark.parametrize("seq", [2, 3, 4, 9])  # inside, last and first of a range, the head
def test_an_edited_row_is_found_at_its_seq(
    db: TestDatabase, owner: Conn, tenant: uuid.UUID, seq: int
) -> None:
    with tampering(owner):
        owner.execute(
            "UPDATE alquimista_platform.audit_logs SET resource_id = 'forged'"
            " WHERE tenant_id = %s AND seq = %s",
            (tenant, seq),
        )

    result = verify(db, tenant)

    assert (result.ok, result.first_bad_seq, result.checked) == (False, seq, seq - 1)


@pytest.mark.parametrize("seq", [3, 4])  # the last row of a range, the first of the next
def test_a_row_deleted_at_a_range_boundary_is_found_at_its_seq(
    db: TestDatabase, owner: Conn, tenant: uuid.UUID, seq: int
) -> None:
    with tampering(owner):
        owner.execute(
            "DELETE FROM alquimista_platform.audit_logs WHERE tenant_id = %s AND seq = %s",
            (tenant, seq),
        )

    result = verify(db, tenant)

    assert (result.ok, result.first_bad_seq) == (False, seq)
    assert "missing" in (result.reason or "")


def test_rows_swapped_across_a_range_boundary_are_found_at_the_first(
    db: TestDatabase, owner: Conn, tenant: uuid.UUID
) -> None:
    with tampering(owner):
        owner.execute(
            "ALTER TABLE alquimista_platform.audit_logs"
            " DROP CONSTRAINT IF EXISTS audit_logs_seq_positive"
        )
        for old, new in ((3, -3), (4, 3), (-3, 4)):
            owner.execute(
                "UPDATE alquimista_platform.audit_logs SET seq = %s"
                " WHERE tenant_id = %s AND seq = %s",
                (new, tenant, old),
            )

    result = verify(db, tenant)

    assert (result.ok, result.first_bad_seq) == (False, 3)


def test_a_range_rewritten_in_itself_fails_at_its_boundary_link(
    db: TestDatabase, owner: Conn, tenant: uuid.UUID
) -> None:
    # Given rows 4..9 (and the head) rewritten into a chain that holds together on its own,
    # starting from a forged hash instead of row 3's
    with scoped(db, tenant) as conn:
        rows = list(AuditRepository(conn, tenant).stream(4))
    previous = bytes(32)
    with tampering(owner):
        for row in rows:
            draft: AuditRow = row._replace(prev_hash=previous)
            previous = row_hash(previous, record_json(draft))
            owner.execute(
                "UPDATE alquimista_platform.audit_logs SET prev_hash = %s, row_hash = %s"
                " WHERE tenant_id = %s AND seq = %s",
                (draft.prev_hash, previous, tenant, row.seq),
            )
        owner.execute(
            "UPDATE alquimista_platform.audit_heads SET row_hash = %s WHERE tenant_id = %s",
            (previous, tenant),
        )

    # When the chain is verified in ranges (4..6 starts from row 3's stored hash)
    result = verify(db, tenant)

    # Then only the link at the boundary fails
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 3)
    assert "prev_hash" in (result.reason or "")


def test_a_range_whose_process_cannot_connect_raises(
    db: TestDatabase, tenant: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        repository, "_conninfo_like", lambda _: "host=127.0.0.1 port=1 connect_timeout=1"
    )

    with pytest.raises(RangeVerificationFailed, match="OperationalError"):
        verify(db, tenant)
