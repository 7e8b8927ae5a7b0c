from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Protocol

import psycopg

from lambdas.health.models import HealthResponse, MigrationState
from lambdas.shared.constants import SERVICE_NAME
from lambdas.shared.observability import logger


class LedgerReader(Protocol):
    def applied_versions(self) -> set[int]: ...


class HealthUow(Protocol):
    @property
    def ledger(self) -> LedgerReader: ...


def check_health(
    uow_factory: Callable[[], AbstractContextManager[HealthUow]],
    *,
    environment: str,
    bundled_versions: Iterable[int],
) -> HealthResponse:
    """Report whether the database answers and whether every bundled migration is applied."""
    bundled = set(bundled_versions)
    try:
        with uow_factory() as uow:
            applied = uow.ledger.applied_versions()
    except psycopg.Error as exc:
        logger.warning("health: database unreachable", extra={"error": type(exc).__name__})
        return HealthResponse(
            ok=False,
            service=SERVICE_NAME,
            environment=environment,
            db_status="unreachable",
            migrations=MigrationState(state="unknown", applied=None, latest=None, pending=None),
        )
    pending = len(bundled - applied)
    return HealthResponse(
        ok=pending == 0,
        service=SERVICE_NAME,
        environment=environment,
        db_status="connected",
        migrations=MigrationState(
            state="current" if pending == 0 else "pending",
            applied=len(applied),
            latest=max(applied, default=None),
            pending=pending,
        ),
    )
