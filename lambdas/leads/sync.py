"""Decisions of offline-client sync (pure; no I/O): what a pushed mutation does against the
server's row, and what a conflict's resolution writes.

Conflicts: update/update (the client edited a version the server has moved past), update/delete
(one side deleted what the other edited), create/create (a create whose natural key, the
normalised e-mail or phone, belongs to another live row). Last-writer-wins, when the tenant
chose it, applies a stale update or delete over the server's newer version; it never resurrects
a deleted row nor merges two creates, which stay conflicts for a person to resolve.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

MutationOp = Literal["create", "update", "delete"]
ConflictKind = Literal["update_update", "update_delete", "create_create"]
Resolution = Literal["keep_mine", "keep_theirs", "merged"]
RejectReason = Literal["not_found", "invalid"]


@dataclass(frozen=True)
class ServerRow:
    """The server's row as the mutation finds it."""

    id: UUID
    version: int
    deleted: bool
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Apply:
    """Write the mutation (``noop``: already in the requested state, nothing to write)."""

    noop: bool = False


@dataclass(frozen=True)
class ConflictFound:
    kind: ConflictKind
    existing_id: UUID


@dataclass(frozen=True)
class Reject:
    reason: RejectReason


Decision = Apply | ConflictFound | Reject


def classify(
    op: MutationOp,
    *,
    base_version: int | None,
    current: ServerRow | None,
    natural_key_owner: UUID | None = None,
    last_writer_wins: bool = False,
) -> Decision:
    """What a mutation does. ``current`` is the row the mutation targets (None: no such row);
    ``natural_key_owner`` the live row already holding a create's natural key, if any."""
    if op == "create":
        owner = natural_key_owner or (current.id if current is not None else None)
        return ConflictFound("create_create", owner) if owner is not None else Apply()
    if current is None:
        return Reject("not_found")
    if base_version is None:
        return Reject("invalid")
    stale = base_version != current.version and not last_writer_wins
    if op == "update":
        return _classify_update(current, stale=stale)
    return _classify_delete(current, stale=stale)


def _classify_update(current: ServerRow, *, stale: bool) -> Decision:
    if current.deleted:
        return ConflictFound("update_delete", current.id)
    return ConflictFound("update_update", current.id) if stale else Apply()


def _classify_delete(current: ServerRow, *, stale: bool) -> Decision:
    if current.deleted:
        return Apply(noop=True)
    return ConflictFound("update_delete", current.id) if stale else Apply()


def resolved_fields(
    resolution: Resolution,
    *,
    mine: Mapping[str, Any],
    theirs: Mapping[str, Any],
    merged: Mapping[str, Any] | None,
    editable: frozenset[str],
) -> dict[str, Any] | None:
    """The fields to write to settle a conflict (None: keep the server's row as it is).

    keep_mine writes the client's editable fields over the server's; merged writes the given
    document, which may only name editable fields; keep_theirs writes nothing.
    """
    if resolution == "keep_theirs":
        if merged is not None:
            raise ValueError("keep_theirs takes no merged document")
        return None
    if resolution == "keep_mine":
        if merged is not None:
            raise ValueError("keep_mine takes no merged document")
        return {k: v for k, v in mine.items() if k in editable and theirs.get(k) != v}
    if merged is None:
        raise ValueError("a merged resolution needs the merged document")
    unknown = set(merged) - editable
    if unknown:
        raise ValueError(f"fields that cannot be set: {', '.join(sorted(unknown))}")
    return dict(merged)
