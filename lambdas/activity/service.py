"""The activity feed: a per-tenant read model of the outbox's events, and its rebuild."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Protocol
from uuid import UUID

from lambdas.activity.models import ActivityItem, ActivityPage, EventEnvelope
from lambdas.shared import cursors

_SORT_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z#[0-9a-f-]{36}$")


class ActivityFeed(Protocol):
    def record(self, tenant_id: UUID, envelope: EventEnvelope) -> bool: ...

    def page(
        self, tenant_id: UUID, *, before: str | None, limit: int
    ) -> tuple[list[ActivityItem], str | None]: ...

    def clear(self, tenant_id: UUID | None) -> int: ...


def encode_cursor(sort_key: str) -> str:
    return cursors.encode_cursor(sort_key)


def decode_cursor(cursor: str) -> str:
    return cursors.decode_cursor(cursor, valid=lambda key: bool(_SORT_KEY.fullmatch(key)))


def list_activity(
    feed: ActivityFeed, tenant_id: UUID, *, cursor: str | None = None, limit: int = 20
) -> ActivityPage:
    """A page of the tenant's activity, newest first."""
    before = decode_cursor(cursor) if cursor else None
    items, last = feed.page(tenant_id, before=before, limit=limit)
    return ActivityPage(items=items, next_cursor=encode_cursor(last) if last else None)


def project(feed: ActivityFeed, envelope: EventEnvelope) -> bool:
    """Apply one event to its tenant's feed, at most once however often it is delivered.
    Platform events (no tenant) belong to no tenant's feed. True if the feed changed."""
    if envelope.tenant_id is None:
        return False
    return feed.record(envelope.tenant_id, envelope)


def rebuild(
    feed: ActivityFeed,
    events: Iterable[EventEnvelope],
    *,
    tenant_id: UUID | None,
    on_event: Callable[[], object] = lambda: None,
) -> tuple[int, int]:
    """Empty the feed of ``tenant_id`` (every tenant when None) and apply ``events`` again;
    returns (items deleted, items written)."""
    deleted = feed.clear(tenant_id)
    written = 0
    for envelope in events:
        if tenant_id is None or envelope.tenant_id == tenant_id:
            written += project(feed, envelope)
        on_event()
    return deleted, written
