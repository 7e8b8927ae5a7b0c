"""Outbox helpers for tests: a runtime-role Database per "process", events emitted the way a
route emits them, and a publisher that records (or fails) what it is given."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lambdas.outbox.models import OutboxEvent
from lambdas.outbox.publisher import PublishError
from lambdas.outbox.repository import OutboxUnitOfWork
from lambdas.shared.db import Database, UnitOfWork
from lambdas.shared.outbox import OutboxWriter
from lambdas.shared.scope import RequestScope
from tests.support.database import TestDatabase


def runtime_database(db: TestDatabase) -> Database:
    """A Database over the runtime role, as a Lambda execution environment holds one."""
    return db.lambda_database("test-outbox")


def relay_uow(database: Database) -> Callable[[], OutboxUnitOfWork]:
    return lambda: OutboxUnitOfWork(RequestScope(lambda: database), None)


def emit(
    database: Database,
    tenant_id: uuid.UUID | None,
    *events: tuple[str, str, str, dict[str, Any]],
) -> list[uuid.UUID]:
    """Emit ``(event_type, aggregate_type, aggregate_id, payload)`` events in one committed
    transaction scoped to ``tenant_id``."""
    with UnitOfWork(RequestScope(lambda: database), tenant_id) as uow:
        writer = OutboxWriter(uow.conn, tenant_id=tenant_id)
        ids = [
            writer.emit(name, aggregate_type=agg, aggregate_id=agg_id, payload=payload)
            for name, agg, agg_id, payload in events
        ]
        uow.commit()
    return ids


def activated(agent_id: uuid.UUID | None = None) -> tuple[str, str, str, dict[str, Any]]:
    agent = agent_id or uuid.uuid4()
    payload = {"agent_id": str(agent), "source": "plan", "activated_by": None}
    return ("agent.activated", "agent", str(agent), payload)


def deactivated(agent_id: uuid.UUID) -> tuple[str, str, str, dict[str, Any]]:
    return ("agent.deactivated", "agent", str(agent_id), {"agent_id": str(agent_id)})


@dataclass
class RecordingPublisher:
    """Accepts every event unless ``fail`` says otherwise for it (then returns that error)."""

    fail: Callable[[OutboxEvent], str | None] = lambda _event: None
    published: list[OutboxEvent] = field(default_factory=list)
    calls: int = 0

    def publish(self, events: Sequence[OutboxEvent]) -> list[PublishError]:
        self.calls += 1
        errors = []
        for event in events:
            code = self.fail(event)
            if code:
                errors.append(PublishError(str(event.id), code, "injected failure"))
            else:
                self.published.append(event)
        return errors
