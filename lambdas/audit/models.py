from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class AuditFilters:
    actor_id: UUID | None = None
    action: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditEntry(_Response):
    id: UUID
    seq: int
    occurred_at: datetime
    actor_id: UUID | None
    actor_type: str
    action: str
    resource_type: str
    resource_id: str | None
    outcome: str
    request_id: str | None
    details: dict[str, Any]
    prev_hash: str
    payload_hash: str
    row_hash: str


class AuditPage(_Response):
    items: list[AuditEntry]
    next_cursor: str | None


class AnchorInfo(_Response):
    seq: int
    row_hash: str
    at: datetime


class VerifyResponse(_Response):
    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str | None
    last_seq: int | None
    last_hash: str | None
    anchor: AnchorInfo | None


class TenantHead(_Response):
    tenant_id: UUID
    seq: int
    row_hash: str
    updated_at: datetime


class AnchorDocument(_Response):
    """What one anchoring run writes to S3: every tenant's head at ``at``."""

    version: int = 1
    at: datetime
    heads: list[TenantHead]


class AnchorReport(_Response):
    key: str
    version_id: str | None
    tenants: int
    retain_until: datetime
