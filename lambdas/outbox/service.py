"""The relay: claim due events, publish them, mark the outcome; repeat until the backlog is
empty or the time budget is spent."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from lambdas.outbox.decisions import MAX_ATTEMPTS, Failure, on_failure
from lambdas.outbox.models import OutboxEvent, OutboxStats, RelayReport
from lambdas.outbox.publisher import Publisher


class OutboxStore(Protocol):
    def claim(self, *, limit: int, claim_s: int) -> list[OutboxEvent]: ...

    def mark_published(self, event_ids: list[UUID]) -> int: ...

    def mark_failed(self, failures: list[Failure]) -> int: ...

    def reset_expired(self, *, max_attempts: int) -> tuple[int, int]: ...

    def stats(self) -> OutboxStats: ...

    def published_after(
        self, *, tenant_id: UUID | None, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[OutboxEvent]: ...

    def count_published(self, *, tenant_id: UUID | None) -> int: ...


class OutboxUow(Protocol):
    @property
    def relay(self) -> OutboxStore: ...

    def commit(self) -> None: ...


OutboxUowFactory = Callable[[], AbstractContextManager[OutboxUow]]


@dataclass(frozen=True)
class RelayOptions:
    batch_size: int = 1000
    claim_s: int = 120
    max_attempts: int = MAX_ATTEMPTS
    # Stop claiming once this much time is left of the invocation.
    time_budget_s: float = 50.0


def relay(
    uow_factory: OutboxUowFactory,
    publisher: Publisher,
    options: RelayOptions,
    *,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RelayReport:
    """Publish every due event once (at least once: a relay that dies after publishing and
    before marking leaves a claim that expires and is published again, with the same id)."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
    started = clock()
    report = RelayReport()
    with uow_factory() as uow:
        report.reset_expired, report.dead = uow.relay.reset_expired(
            max_attempts=options.max_attempts
        )
        uow.commit()
    published: list[UUID] = []
    failures: list[Failure] = []
    while True:
        # One transaction marks the last batch and claims the next: seq n+1 of an aggregate
        # becomes claimable as soon as seq n is marked, and each batch costs one commit.
        with uow_factory() as uow:
            if published:
                report.published += uow.relay.mark_published(published)
            if failures:
                uow.relay.mark_failed(failures)
            in_time = clock() - started < options.time_budget_s
            claimed = (
                uow.relay.claim(limit=options.batch_size, claim_s=options.claim_s)
                if in_time
                else []
            )
            uow.commit()
        report.dead += sum(f.dead for f in failures)
        report.retried += sum(not f.dead for f in failures)
        if not claimed:
            break
        report.batches += 1
        report.claimed += len(claimed)
        errors = {error.event_id: error for error in publisher.publish(claimed)}
        published = [event.id for event in claimed if str(event.id) not in errors]
        failures = [
            on_failure(
                str(event.id),
                attempts=event.attempts,
                error_code=errors[str(event.id)].code,
                message=errors[str(event.id)].message,
                rng=rng,
                max_attempts=options.max_attempts,
            )
            for event in claimed
            if str(event.id) in errors
        ]
    report.duration_ms = int((clock() - started) * 1000)
    return report


def stats(uow_factory: OutboxUowFactory) -> OutboxStats:
    """The backlog: pending, inflight and dead counts and the oldest pending event's time."""
    with uow_factory() as uow:
        return uow.relay.stats()


def count_published(uow_factory: OutboxUowFactory, *, tenant_id: UUID | None) -> int:
    with uow_factory() as uow:
        return uow.relay.count_published(tenant_id=tenant_id)


def published_events(
    uow_factory: OutboxUowFactory, *, tenant_id: UUID | None, page_size: int = 1000
) -> Iterator[OutboxEvent]:
    """Every published event (of one tenant, or all) in emission order, a page per transaction."""
    after: tuple[datetime, UUID] | None = None
    while True:
        with uow_factory() as uow:
            page = uow.relay.published_after(tenant_id=tenant_id, after=after, limit=page_size)
        yield from page
        if len(page) < page_size:
            return
        after = (page[-1].created_at, page[-1].id)
