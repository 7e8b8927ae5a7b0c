from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from lambdas.shared.constants import PLATFORM_TENANT


class OutboxEvent(BaseModel):
    """One row of the outbox as the relay and replays read it."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    tenant_id: UUID
    aggregate_type: str
    aggregate_id: str
    seq: int
    event_type: str
    payload_version: int
    payload: dict[str, Any]
    attempts: int
    created_at: datetime

    def detail(self) -> dict[str, Any]:
        """The EventBridge ``Detail``: everything a consumer needs to deduplicate and order."""
        return {
            "event_id": str(self.id),
            "event_type": self.event_type,
            "version": self.payload_version,
            "tenant_id": None if self.tenant_id == PLATFORM_TENANT else str(self.tenant_id),
            "aggregate": {"type": self.aggregate_type, "id": self.aggregate_id, "seq": self.seq},
            "occurred_at": self.created_at.isoformat(),
            "payload": self.payload,
        }


class OutboxStats(BaseModel):
    pending: int
    inflight: int
    dead: int
    oldest_pending_at: datetime | None


class RelayReport(BaseModel):
    claimed: int = 0
    published: int = 0
    retried: int = 0
    dead: int = 0
    reset_expired: int = 0
    batches: int = 0
    duration_ms: int = 0
