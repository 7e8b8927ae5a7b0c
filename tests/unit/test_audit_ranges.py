"""Verification in parallel seq ranges: the plan, the join, and the service over a fake log
whose ranges run in-process (tests/integration/test_audit_parallel_verify.py runs them in
processes on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from lambdas.audit import service
from lambdas.audit.models import VerifyResponse
from lambdas.shared.audit import (
    Anchor,
    AuditRow,
    RangeCheck,
    VerifyResult,
    join_ranges,
    plan_ranges,
    record_json,
    row_hash,
    verify_chain,
)
from tests.unit.test_audit_verify import TENANT, anchor_of, build_chain


class FakeAuditLog:
    """A stored chain: rows by seq, as the repository's queries see them."""

    def __init__(self, rows: list[AuditRow], head: Anchor | None = None) -> None:
        self.rows = rows
        self._head = head
        self.ranges: list[RangeCheck] = []

    def stream(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[AuditRow]:
        upper = to_seq if to_seq is not None else 2**63
        return iter(sorted((r for r in self.rows if from_seq <= r.seq <= upper), key=_seq))

    def row_hash_at(self, seq: int) -> bytes | None:
        return next((r.row_hash for r in self.rows if r.seq == seq), None)

    def head(self) -> Anchor | None:
        return self._head

    def last_seq(self, to_seq: int | None = None) -> int | None:
        upper = to_seq if to_seq is not None else 2**63
        return max((r.seq for r in self.rows if r.seq <= upper), default=None)

    def verify_ranges(self, checks: Sequence[RangeCheck]) -> list[VerifyResult | None]:
        self.ranges.extend(checks)
        results: list[VerifyResult | None] = []
        for check in checks:
            prev_hash = check.prev_hash or self.row_hash_at(check.from_seq - 1)
            results.append(
                None
                if prev_hash is None
                else verify_chain(
                    self.stream(check.from_seq, check.to_seq),
                    from_seq=check.from_seq,
                    prev_hash=prev_hash,
                    to_seq=check.to_seq,
                    anchors=check.anchors,
                )
            )
        return results

    def page(self, *args: object, **kwargs: object) -> list[object]:
        raise NotImplementedError


def _seq(row: AuditRow) -> int:
    return row.seq


class FakeUow:
    def __init__(self, log: FakeAuditLog) -> None:
        self.log = log
        self.heads = None


def verify(
    log: FakeAuditLog, *, parts: int = 3, external: Anchor | None = None, **kwargs: int
) -> VerifyResponse:
    @contextmanager
    def uow() -> Iterator[FakeUow]:
        yield FakeUow(log)

    return service.verify_tenant_chain(
        uow,  # type: ignore[arg-type]
        external,
        workers=parts,
        min_range_rows=1,
        **kwargs,
    )


def rehash_from(rows: list[AuditRow], index: int, prev: bytes) -> None:
    """Rewrite rows[index:] into a chain that is consistent in itself, starting from ``prev``."""
    for i in range(index, len(rows)):
        draft = rows[i]._replace(prev_hash=prev)
        prev = row_hash(prev, record_json(draft))
        rows[i] = draft._replace(row_hash=prev)


# ---- the plan ----------------------------------------------------------------------------


def test_ranges_are_contiguous_and_the_last_is_open() -> None:
    assert plan_ranges(1, 9, None, parts=3, min_rows=1) == [(1, 3), (4, 6), (7, None)]
    assert plan_ranges(5, 14, 20, parts=2, min_rows=1) == [(5, 9), (10, 20)]


def test_a_short_chain_is_one_range() -> None:
    assert plan_ranges(1, 40, None, parts=4, min_rows=25) == [(1, None)]
    assert plan_ranges(1, 60, None, parts=4, min_rows=25) == [(1, 30), (31, None)]


def test_an_empty_chain_is_one_range() -> None:
    assert plan_ranges(1, 0, None, parts=2, min_rows=1) == [(1, None)]


# ---- the join ----------------------------------------------------------------------------


def test_a_range_that_stops_short_of_its_end_is_a_missing_row() -> None:
    checks = [RangeCheck(1, 3, b""), RangeCheck(4, None, b"")]
    results: list[VerifyResult | None] = [
        VerifyResult(ok=True, checked=2, last_seq=2, last_hash="aa"),
        VerifyResult(ok=True, checked=3, last_seq=6, last_hash="bb"),
    ]

    joined = join_ranges(checks, results)

    assert (joined.ok, joined.first_bad_seq, joined.checked, joined.last_seq) == (False, 3, 2, 2)
    assert "missing" in (joined.reason or "")


def test_the_first_fault_in_seq_order_wins_and_counts_the_rows_before_it() -> None:
    checks = [RangeCheck(1, 3, b""), RangeCheck(4, 6, b""), RangeCheck(7, None, b"")]
    results: list[VerifyResult | None] = [
        VerifyResult(ok=True, checked=3, last_seq=3, last_hash="aa"),
        VerifyResult(ok=False, checked=0, first_bad_seq=4, reason="prev_hash differs"),
        VerifyResult(ok=False, checked=1, first_bad_seq=8, reason="later", last_seq=7),
    ]

    joined = join_ranges(checks, results)

    assert (joined.first_bad_seq, joined.reason, joined.checked) == (4, "prev_hash differs", 3)
    assert (joined.last_seq, joined.last_hash) == (3, "aa")


def test_joined_good_ranges_report_the_whole_chain() -> None:
    checks = [RangeCheck(1, 3, b""), RangeCheck(4, None, b"")]
    results: list[VerifyResult | None] = [
        VerifyResult(ok=True, checked=3, last_seq=3, last_hash="aa"),
        VerifyResult(ok=True, checked=4, last_seq=7, last_hash="bb"),
    ]

    assert join_ranges(checks, results) == VerifyResult(
        ok=True, checked=7, last_seq=7, last_hash="bb"
    )


# ---- the service, in ranges --------------------------------------------------------------


def test_an_untouched_chain_verifies_in_ranges_like_in_one_pass() -> None:
    rows = build_chain(10)
    log = FakeAuditLog(rows, head=anchor_of(rows[-1]))

    result = verify(log)

    assert [(c.from_seq, c.to_seq) for c in log.ranges] == [(1, 3), (4, 6), (7, None)]
    assert (result.ok, result.checked, result.last_seq) == (True, 10, 10)
    assert result.last_hash == rows[-1].row_hash.hex()


@pytest.mark.parametrize("seq", [2, 3, 4, 10])  # inside, last and first of a range, the head
def test_an_edited_row_is_found_at_its_seq(seq: int) -> None:
    rows = build_chain(10)
    rows[seq - 1] = rows[seq - 1]._replace(resource_id="forged")

    result = verify(FakeAuditLog(rows))

    assert (result.ok, result.first_bad_seq, result.checked) == (False, seq, seq - 1)


@pytest.mark.parametrize("seq", [2, 3, 4])  # inside, last and first of a range
def test_a_deleted_row_is_found_at_its_seq(seq: int) -> None:
    rows = build_chain(10)
    del rows[seq - 1]

    result = verify(FakeAuditLog(rows))

    assert (result.ok, result.first_bad_seq) == (False, seq)
    assert "missing" in (result.reason or "")


def test_rows_swapped_across_a_range_boundary_are_found_at_the_first() -> None:
    rows = build_chain(10)
    third, fourth = rows[2], rows[3]
    rows[2], rows[3] = fourth._replace(seq=3), third._replace(seq=4)

    result = verify(FakeAuditLog(rows))

    assert (result.ok, result.first_bad_seq) == (False, 3)


def test_a_range_rewritten_in_itself_is_caught_at_its_boundary_link() -> None:
    # Given rows 4..10 rewritten into a chain that holds together from a forged start
    rows = build_chain(10)
    rehash_from(rows, 3, prev=bytes(32))
    log = FakeAuditLog(rows, head=anchor_of(rows[-1]))  # the head row rewritten as well

    # When the range starting at row 4 is checked against row 3's stored hash
    result = verify(log)

    # Then the link at the boundary is what fails
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 3)
    assert "prev_hash" in (result.reason or "")
    assert [(c.from_seq, c.to_seq) for c in log.ranges] == [(1, 3), (4, 6), (7, None)]


def test_a_deleted_tail_is_found_against_the_anchor_in_the_last_range() -> None:
    rows = build_chain(10)
    anchor = anchor_of(rows[-1])

    result = verify(FakeAuditLog(rows[:-2]), external=anchor)

    assert (result.ok, result.first_bad_seq, result.last_seq) == (False, 9, 8)
    assert "rows were removed" in (result.reason or "")


def test_an_anchor_inside_an_earlier_range_is_checked_there() -> None:
    rows = build_chain(10)
    forged = Anchor(TENANT, 2, "00" * 32, datetime(2026, 3, 2, tzinfo=UTC))

    result = verify(FakeAuditLog(rows), external=forged)

    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert "anchor" in (result.reason or "")


def test_a_range_of_the_chain_is_split_from_its_from_seq() -> None:
    rows = build_chain(12)
    log = FakeAuditLog(rows)

    result = verify(log, parts=2, from_seq=5, to_seq=10)

    assert [(c.from_seq, c.to_seq) for c in log.ranges] == [(5, 7), (8, 10)]
    assert (result.ok, result.checked, result.last_seq) == (True, 6, 10)
