"""What a run returns: a JSON-able report, and the errors that end a run early."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from lambdas.migrations.ledger import RUNNER_VERSION


@dataclass(frozen=True)
class AppliedFile:
    version: int
    file: str
    execution_ms: int


@dataclass
class MigrationReport:
    action: str
    ok: bool = True
    applied: list[AppliedFile] = field(default_factory=list)
    """Files this run applied (or, for ``baseline``, recorded without running)."""
    pending: list[str] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    ahead: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    error: str | None = None
    failed_file: str | None = None
    invalid_indexes: list[str] = field(default_factory=list)
    adopted_legacy: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    latest_version: int | None = None
    duration_ms: int = 0
    runner_version: str = RUNNER_VERSION

    def fail(self, message: str) -> None:
        self.ok = False
        self.error = message

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def summary(self) -> str:
        if not self.ok:
            return f"{self.action} failed: {self.error}"
        parts = [f"{self.action}: {len(self.applied)} applied", f"{len(self.pending)} pending"]
        if self.ahead:
            parts.append(f"database ahead of the bundle ({', '.join(self.ahead)})")
        return ", ".join(parts)


class MigrationFailed(RuntimeError):
    """A run that did not complete; the message names the file and the PostgreSQL error."""


class FileFailed(RuntimeError):
    """A file failed; it is recorded with ``success = false`` and named in the report."""

    def __init__(self, filename: str, message: str, invalid_indexes: list[str]) -> None:
        super().__init__(message)
        self.filename = filename
        self.invalid_indexes = invalid_indexes


def pg_message(exc: psycopg.Error) -> str:
    """``[SQLSTATE] primary message (detail)`` of a PostgreSQL error, for a report."""
    diag = exc.diag
    primary = diag.message_primary or str(exc).strip()
    code = f"[{diag.sqlstate}] " if diag.sqlstate else ""
    detail = f" ({diag.message_detail})" if diag.message_detail else ""
    return f"{code}{primary}{detail}"
