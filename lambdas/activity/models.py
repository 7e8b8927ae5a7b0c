from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventAggregate(_Model):
    type: str
    id: str
    seq: int = Field(ge=1)


class EventEnvelope(BaseModel):
    """The ``detail`` of an outbox event on the bus (lambdas/outbox/models.py writes it)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: UUID
    event_type: str = Field(min_length=3, max_length=100)
    version: int = Field(ge=1)
    tenant_id: UUID | None
    aggregate: EventAggregate
    occurred_at: datetime
    payload: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at needs a time zone")
        return value.astimezone(UTC)


class ActivityItem(_Model):
    event_id: UUID
    type: str
    version: int
    aggregate: EventAggregate
    occurred_at: datetime
    data: dict[str, Any]


class ActivityPage(_Model):
    items: list[ActivityItem]
    next_cursor: str | None
