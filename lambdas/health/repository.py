from __future__ import annotations

from psycopg import errors

from lambdas.shared.constants import HEALTH_STATEMENT_TIMEOUT_MS
from lambdas.shared.db import Connection, UnitOfWork


class MigrationLedgerRepository:
    """Reads what the migration runner recorded; the runtime role may only read it."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def applied_versions(self) -> set[int]:
        self._conn.execute(
            "select set_config('statement_timeout', %s, true)", (str(HEALTH_STATEMENT_TIMEOUT_MS),)
        )
        try:
            with self._conn.transaction():
                rows = self._conn.execute(
                    """
                    SELECT version FROM public.migrations WHERE success
                    """
                ).fetchall()
        except errors.UndefinedTable:
            return set()
        return {int(row["version"]) for row in rows}


class HealthUnitOfWork(UnitOfWork):
    ledger: MigrationLedgerRepository

    def _on_enter(self) -> None:
        self.ledger = MigrationLedgerRepository(self.conn)
