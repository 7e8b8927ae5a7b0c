from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class MigrationState(BaseModel):
    applied: int
    latest: int | None
    pending: int


class HealthResponse(BaseModel):
    ok: bool
    service: str
    environment: str
    db_status: Literal["connected", "unreachable"]
    migrations: MigrationState
