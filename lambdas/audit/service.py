from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

from lambdas.audit.models import (
    AnchorDocument,
    AnchorInfo,
    AnchorReport,
    AuditEntry,
    AuditFilters,
    AuditPage,
    TenantHead,
    VerifyResponse,
)
from lambdas.shared import cursors
from lambdas.shared.audit import (
    GENESIS_HASH,
    Anchor,
    AuditRow,
    RangeCheck,
    VerifyResult,
    join_ranges,
    plan_ranges,
    verify_chain,
)
from lambdas.shared.errors import ValidationFailed


class InvalidSeqRange(ValidationFailed):
    code = "invalid_seq_range"


class AuditLog(Protocol):
    def page(
        self, filters: AuditFilters, *, after_seq: int | None, limit: int
    ) -> list[AuditEntry]: ...

    def stream(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[AuditRow]: ...

    def row_hash_at(self, seq: int) -> bytes | None: ...

    def head(self) -> Anchor | None: ...

    def last_seq(self, to_seq: int | None = None) -> int | None: ...

    def verify_ranges(self, checks: Sequence[RangeCheck]) -> list[VerifyResult | None]: ...


class AuditHeads(Protocol):
    def all_heads(self) -> list[TenantHead]: ...


class AuditUow(Protocol):
    @property
    def log(self) -> AuditLog: ...

    @property
    def heads(self) -> AuditHeads: ...


class AnchorWriter(Protocol):
    def put(self, document: AnchorDocument) -> AnchorReport: ...


AuditUowFactory = Callable[[], AbstractContextManager[AuditUow]]

# Below this many rows per range, starting a process and a connection costs more than the
# range's share of the hashing saves (a range of 25,000 rows takes ~0.6 s of one core).
MIN_RANGE_ROWS = 25_000


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# The tenant's head in the latest external anchor, or None (no anchor yet, or none configured).
AnchorLookup = Callable[[UUID], Anchor | None]


def encode_cursor(seq: int) -> str:
    return cursors.encode_cursor(f"seq:{seq}")


def _is_seq(position: str) -> bool:
    prefix, _, number = position.partition(":")
    return prefix == "seq" and number.isdigit() and int(number) >= 1


def decode_cursor(cursor: str) -> int:
    return int(cursors.decode_cursor(cursor, valid=_is_seq).partition(":")[2])


def list_entries(
    uow_factory: AuditUowFactory, filters: AuditFilters, *, cursor: str | None, limit: int
) -> AuditPage:
    """A page of the tenant's audit log, newest first, filtered; the cursor is opaque."""
    after = decode_cursor(cursor) if cursor else None
    with uow_factory() as uow:
        entries = uow.log.page(filters, after_seq=after, limit=limit + 1)
    has_more = len(entries) > limit
    items = entries[:limit]
    return AuditPage(items=items, next_cursor=encode_cursor(items[-1].seq) if has_more else None)


def verify_tenant_chain(
    uow_factory: AuditUowFactory,
    external: Anchor | None,
    *,
    from_seq: int | None = None,
    to_seq: int | None = None,
    workers: int | None = None,
    min_range_rows: int = MIN_RANGE_ROWS,
) -> VerifyResponse:
    """Verify the tenant's chain (or the range ``from_seq``..``to_seq``) against its rows,
    the database's head row and ``external``, the latest anchor written to S3.

    A long chain is split into up to ``workers`` (default: the cores available) contiguous
    seq ranges of at least ``min_range_rows`` rows, verified in parallel; each range starts
    from the stored hash of the row before it, which the range before checks as its last row
    (``join_ranges``)."""
    start = from_seq or 1
    if to_seq is not None and to_seq < start:
        raise InvalidSeqRange("to_seq must not be below from_seq")
    with uow_factory() as uow:
        anchors = [a for a in (uow.log.head(), external) if a is not None]
        result = verify_log(
            uow.log,
            anchors,
            from_seq=start,
            to_seq=to_seq,
            workers=workers,
            min_range_rows=min_range_rows,
        )
    return verify_response(result, external)


def verify_log(
    log: AuditLog,
    anchors: Sequence[Anchor],
    *,
    from_seq: int = 1,
    to_seq: int | None = None,
    workers: int | None = None,
    min_range_rows: int = MIN_RANGE_ROWS,
) -> VerifyResult:
    """Verify ``log`` from ``from_seq`` (to ``to_seq``) against its rows and ``anchors``: in one
    stream, or, when the chain is long enough, in up to ``workers`` parallel seq ranges."""
    prev_hash = GENESIS_HASH if from_seq == 1 else log.row_hash_at(from_seq - 1)
    if prev_hash is None:
        raise InvalidSeqRange(f"the chain has no row {from_seq - 1} to continue from")
    parts = workers or available_cores()
    last = log.last_seq(to_seq) if parts > 1 else None
    ranges = plan_ranges(
        from_seq, last or from_seq, to_seq, parts=parts, min_rows=max(min_range_rows, 1)
    )
    if len(ranges) > 1:
        return _verify_in_ranges(log, ranges, prev_hash, list(anchors))
    return verify_chain(
        log.stream(from_seq, to_seq),
        from_seq=from_seq,
        prev_hash=prev_hash,
        to_seq=to_seq,
        anchors=anchors,
    )


def _verify_in_ranges(
    log: AuditLog,
    ranges: list[tuple[int, int | None]],
    prev_hash: bytes,
    anchors: list[Anchor],
) -> VerifyResult:
    # Each range but the first starts from the stored hash of the row before it, read where
    # its rows are read (one snapshot for all of them).
    checks = [
        RangeCheck(first, last, prev_hash if i == 0 else None, tuple(anchors))
        for i, (first, last) in enumerate(ranges)
    ]
    return join_ranges(checks, log.verify_ranges(checks))


def verify_response(result: VerifyResult, external: Anchor | None) -> VerifyResponse:
    return VerifyResponse(
        ok=result.ok,
        checked=result.checked,
        first_bad_seq=result.first_bad_seq,
        reason=result.reason,
        last_seq=result.last_seq,
        last_hash=result.last_hash,
        anchor=(
            AnchorInfo(seq=external.seq, row_hash=external.row_hash, at=external.at)
            if external
            else None
        ),
    )


def anchor_audit_heads(
    uow_factory: AuditUowFactory,
    store: AnchorWriter,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> AnchorReport:
    """Write every tenant's chain head to the anchor store (one document per run)."""
    with uow_factory() as uow:
        heads = uow.heads.all_heads()
    return store.put(AnchorDocument(at=clock(), heads=heads))
