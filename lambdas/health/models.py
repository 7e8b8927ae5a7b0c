from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class MigrationState(BaseModel):
    # "unknown" while the database cannot be asked; the counts are then null, not guesses.
    state: Literal["current", "pending", "unknown"]
    applied: int | None
    latest: int | None
    pending: int | None


class HealthResponse(BaseModel):
    ok: bool
    service: str
    environment: str
    db_status: Literal["connected", "unreachable"]
    migrations: MigrationState
