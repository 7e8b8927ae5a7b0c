from __future__ import annotations

from collections.abc import Callable, Iterator
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
from lambdas.shared.audit import GENESIS_HASH, Anchor, AuditRow, VerifyResult, verify_chain
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
) -> VerifyResponse:
    """Verify the tenant's chain (or the range ``from_seq``..``to_seq``) against its rows,
    the database's head row and ``external``, the latest anchor written to S3."""
    start = from_seq or 1
    if to_seq is not None and to_seq < start:
        raise InvalidSeqRange("to_seq must not be below from_seq")
    with uow_factory() as uow:
        prev_hash = GENESIS_HASH if start == 1 else uow.log.row_hash_at(start - 1)
        if prev_hash is None:
            raise InvalidSeqRange(f"the chain has no row {start - 1} to continue from")
        anchors = [a for a in (uow.log.head(), external) if a is not None]
        result = verify_chain(
            uow.log.stream(start, to_seq),
            from_seq=start,
            prev_hash=prev_hash,
            to_seq=to_seq,
            anchors=anchors,
        )
    return verify_response(result, external)


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
