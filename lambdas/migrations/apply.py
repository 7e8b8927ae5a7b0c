"""Running one migration file on the work connection: in one transaction (or statement by
statement for a ``-- migrate: no-transaction`` file), under statement and lock timeouts that
end before the invocation does, and recorded in the ledger whether it succeeds or fails."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from lambdas.migrations import ledger
from lambdas.migrations.ledger import Connection
from lambdas.migrations.report import AppliedFile, FileFailed, MigrationFailed, pg_message
from lambdas.migrations.statements import is_no_transaction, split_statements
from lambdas.shared.migration_files import MigrationFile
from lambdas.shared.observability import logger


class FileApplier:
    """Applies files on ``conn`` (autocommit; each file opens its own transaction).

    ``remaining_s`` says how much time is left before the invocation's deadline (minus the
    margin kept for reporting); None: no deadline, no statement timeout.
    """

    def __init__(
        self,
        conn: Connection,
        *,
        lock_timeout_s: float,
        remaining_s: Callable[[], float] | None,
        applied_by: str | None,
    ) -> None:
        self._conn = conn
        self._lock_timeout_s = lock_timeout_s
        self._remaining_s = remaining_s
        self._applied_by = applied_by

    def apply(self, migration: MigrationFile) -> AppliedFile:
        started = time.perf_counter()
        logger.info("applying migration", extra={"file": migration.filename})
        try:
            if is_no_transaction(migration.sql):
                self._run_without_transaction(migration)
                execution_ms = _elapsed_ms(started)
                with self._conn.transaction():
                    self._record(migration, execution_ms=execution_ms, success=True)
            else:
                with self._conn.transaction():
                    self._set_timeouts(migration, local=True)
                    self._conn.execute(migration.sql.encode())
                    execution_ms = _elapsed_ms(started)
                    self._record(migration, execution_ms=execution_ms, success=True)
        except FileFailed:
            raise
        except psycopg.Error as exc:
            raise self._failure(migration, exc, started, first_line=1) from exc
        return AppliedFile(migration.version, migration.filename, execution_ms)

    def _run_without_transaction(self, migration: MigrationFile) -> None:
        started = time.perf_counter()
        for statement in split_statements(migration.sql):
            self._set_timeouts(migration, local=False)
            try:
                self._conn.execute(statement.text.encode())
            except psycopg.Error as exc:
                raise self._failure(
                    migration,
                    exc,
                    started,
                    first_line=statement.line,
                    statement=statement.text,
                    no_transaction=True,
                ) from exc

    def _failure(
        self,
        migration: MigrationFile,
        exc: psycopg.Error,
        started: float,
        *,
        first_line: int,
        statement: str | None = None,
        no_transaction: bool = False,
    ) -> FileFailed:
        text = statement if statement is not None else migration.sql
        position = exc.diag.statement_position
        line = first_line
        if position and position.isdigit():
            line += text[: int(position) - 1].count("\n")
        message = f"{migration.filename} (line {line}): {pg_message(exc)}"
        invalid: list[str] = []
        if not self._conn.broken:
            if no_transaction:
                invalid = ledger.invalid_indexes(self._conn)
                if invalid:
                    message += (
                        f"; it left INVALID indexes: {', '.join(invalid)} "
                        "(drop them before re-running)"
                    )
            with self._conn.transaction():
                self._record(migration, execution_ms=_elapsed_ms(started), success=False)
        return FileFailed(migration.filename, message, invalid)

    def _set_timeouts(self, migration: MigrationFile, *, local: bool) -> None:
        lock_ms = int(self._lock_timeout_s * 1000)
        statement_ms = 0
        if self._remaining_s is not None:
            statement_ms = int(self._remaining_s() * 1000)
            if statement_ms < 1000:
                raise MigrationFailed(
                    f"{migration.filename}: not started, too little time left in this "
                    "invocation; re-run to continue"
                )
            lock_ms = min(lock_ms, statement_ms)
        self._conn.execute(
            """
            SELECT set_config('statement_timeout', %s, %s), set_config('lock_timeout', %s, %s)
            """,
            (str(statement_ms), local, str(lock_ms), local),
        )

    def _record(self, migration: MigrationFile, *, execution_ms: int, success: bool) -> None:
        ledger.record(
            self._conn,
            migration,
            execution_ms=execution_ms,
            success=success,
            applied_by=self._applied_by,
        )


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
