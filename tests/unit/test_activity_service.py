from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from lambdas.activity import service
from lambdas.activity.models import ActivityItem, EventEnvelope
from lambdas.activity.repository import sort_key
from lambdas.shared.cursors import InvalidCursor


class FakeFeed:
    def __init__(self) -> None:
        self.items: dict[tuple[uuid.UUID, str], EventEnvelope] = {}
        self.cleared: list[uuid.UUID | None] = []

    def record(self, tenant_id: uuid.UUID, envelope: EventEnvelope) -> bool:
        key = (tenant_id, sort_key(envelope))
        if key in self.items:
            return False
        self.items[key] = envelope
        return True

    def page(self, tenant_id, *, before, limit) -> tuple[list[ActivityItem], str | None]:
        raise NotImplementedError

    def clear(self, tenant_id: uuid.UUID | None) -> int:
        self.cleared.append(tenant_id)
        gone = [k for k in self.items if tenant_id is None or k[0] == tenant_id]
        for key in gone:
            del self.items[key]
        return len(gone)


def _envelope(tenant: uuid.UUID | None, at: datetime | None = None) -> EventEnvelope:
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type="agent.deactivated",
        version=1,
        tenant_id=tenant,
        aggregate={"type": "agent", "id": "a", "seq": 1},
        occurred_at=at or datetime.now(UTC),
        payload={"agent_id": "a"},
    )


def test_an_event_is_applied_once_however_often_it_arrives() -> None:
    feed, tenant = FakeFeed(), uuid.uuid4()
    envelope = _envelope(tenant)

    results = [service.project(feed, envelope) for _ in range(3)]

    assert results == [True, False, False]
    assert len(feed.items) == 1


def test_platform_events_belong_to_no_feed() -> None:
    feed = FakeFeed()

    assert service.project(feed, _envelope(None)) is False
    assert feed.items == {}


def test_sort_keys_order_by_time_whatever_the_offset_or_precision() -> None:
    base = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    whole = _envelope(uuid.uuid4(), base)
    later = _envelope(uuid.uuid4(), base + timedelta(microseconds=1))
    brazil = _envelope(
        uuid.uuid4(), (base + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=-3)))
    )

    keys = [sort_key(e) for e in (whole, later, brazil)]

    assert keys == sorted(keys)
    assert keys[0].startswith("2026-12-01T12:00:00.000000Z#")


def test_a_cursor_round_trips_and_a_forged_one_is_refused() -> None:
    key = sort_key(_envelope(uuid.uuid4()))

    assert service.decode_cursor(service.encode_cursor(key)) == key
    for forged in (
        "",
        "%%",
        service.encode_cursor("2026-12-01#x"),
        service.encode_cursor(key + "x"),
    ):
        with pytest.raises(InvalidCursor):
            service.decode_cursor(forged)


def test_a_tenant_rebuild_clears_and_reapplies_only_that_tenant() -> None:
    feed, a, b = FakeFeed(), uuid.uuid4(), uuid.uuid4()
    kept = _envelope(b)
    service.project(feed, kept)
    stale = _envelope(a)
    service.project(feed, stale)
    seen: list[int] = []

    deleted, written = service.rebuild(
        feed, [_envelope(a), _envelope(b), _envelope(None)], tenant_id=a,
        on_event=lambda: seen.append(1),
    )  # fmt: skip

    assert (deleted, written) == (1, 1)
    assert feed.cleared == [a]
    assert len(seen) == 3
    assert (b, sort_key(kept)) in feed.items
    assert (a, sort_key(stale)) not in feed.items
