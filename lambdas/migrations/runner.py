"""The migration runner: one core used by the Lambda (custom resource and direct invocation)
and by ``scripts/migrate.py``.

A run: connect (retried while Aurora resumes) -> advisory lock (dedicated connection) -> read
the ledger in one query -> validate the bundle against it -> apply each pending file in its
own transaction and record it -> sync the runtime role -> unlock. Every failure comes back as
a report with ``ok = False`` and a message naming the file; nothing is half-recorded.

This module only orchestrates. Running one file lives in ``apply``, the ledger's statements in
``ledger``, the legacy table's adoption in ``legacy``, the runtime role in ``roles``, the lock
in ``locks``, the report in ``report`` and connecting in ``lambdas.shared.pgconnect``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from lambdas.migrations import ledger as ledger_table
from lambdas.migrations.apply import FileApplier
from lambdas.migrations.ledger import LEDGER_TABLE, Connection, read_ledger, table_exists
from lambdas.migrations.legacy import adopt_legacy
from lambdas.migrations.locks import AdvisoryLock
from lambdas.migrations.plan import LedgerEntry, MigrationPlan, plan_migrations
from lambdas.migrations.report import (
    AppliedFile,
    FileFailed,
    MigrationFailed,
    MigrationReport,
    pg_message,
)
from lambdas.migrations.roles import RuntimeRole, ensure_runtime_role
from lambdas.shared.locks import LockBusy
from lambdas.shared.migration_files import (
    MIGRATIONS_DIR,
    MigrationFile,
    MigrationFileError,
    discover,
)
from lambdas.shared.observability import logger
from lambdas.shared.pgconnect import ConnectRetry, DatabaseUnreachable, connect_with_retry

APPLICATION_NAME = "alquimista-migrations"
CONNECT_FIRST_DELAY_S = 0.5
CONNECT_MAX_DELAY_S = 10.0

ConninfoSource = Callable[[bool], str]
"""Returns a libpq connection string; called with ``True`` to refetch rotated credentials."""


@dataclass(frozen=True)
class RunnerOptions:
    lock_wait_s: float = 60.0
    connect_retry_s: float = 90.0
    connect_timeout_s: int = 10
    lock_timeout_s: float = 30.0
    time_margin_s: float = 15.0
    """Kept free before the deadline, so a timed-out statement still leaves time to report."""
    allow_out_of_order: bool = False
    application_name: str = APPLICATION_NAME
    applied_by: str | None = None


class MigrationRunner:
    """Applies ``database/migrations`` to one database, recording each file in the ledger."""

    def __init__(
        self,
        conninfo: ConninfoSource | str,
        *,
        directory: Path = MIGRATIONS_DIR,
        runtime_role: RuntimeRole | None = None,
        options: RunnerOptions | None = None,
        deadline: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``deadline`` is a ``time.monotonic()`` instant (the Lambda's end); None: no limit."""
        self._conninfo: ConninfoSource = (
            (lambda _force: conninfo) if isinstance(conninfo, str) else conninfo
        )
        self._directory = directory
        self._runtime_role = runtime_role
        self._options = options or RunnerOptions()
        self._deadline = deadline
        self._sleep = sleep

    # -- actions -----------------------------------------------------------------------------

    def apply(self, *, sync_runtime_role: bool = False) -> MigrationReport:
        """Apply every pending file. ``sync_runtime_role`` re-sets the role's password and
        grants even when nothing is pending (a deploy may have rotated the secret)."""
        with self._run("apply") as report:
            files = discover(self._directory)
            with self._locked() as conn:
                ledger, role_exists = self._read_ledger(conn)
                if ledger is None:
                    ledger = self._bootstrap(conn, files, report)
                plan = self._plan(files, ledger, report)
                if not plan.ok:
                    report.fail("; ".join(plan.refusals))
                    return report
                applier = self._applier(conn)
                for migration in plan.pending:
                    report.applied.append(applier.apply(migration))
                    report.pending.remove(migration.filename)
                if self._runtime_role and (
                    report.applied or not role_exists or sync_runtime_role or report.adopted_legacy
                ):
                    ensure_runtime_role(conn, self._runtime_role)
                report.latest_version = _latest(ledger, report.applied)
        return report

    def status(self) -> MigrationReport:
        """Applied, pending and drifted files; read-only, takes no lock."""
        return self._inspect("status")

    def plan(self) -> MigrationReport:
        """What ``apply`` would run, or why it would refuse; read-only, takes no lock."""
        return self._inspect("plan")

    def baseline(self, version: int) -> MigrationReport:
        """Record the bundled files up to ``version`` as applied, without running them, on a
        database that has the schema but no ledger."""
        with self._run("baseline") as report:
            files = discover(self._directory)
            with self._locked() as conn:
                ledger, _ = self._read_ledger(conn)
                if ledger is None and table_exists(conn, LEDGER_TABLE):
                    report.fail(
                        "public.migrations exists in the legacy shape; run apply to adopt it"
                    )
                    return report
                if ledger:
                    report.fail(
                        f"the ledger already records {len(ledger)} versions; baseline is only "
                        "for a database without one"
                    )
                    return report
                chosen = [f for f in files if f.version <= version]
                if not chosen:
                    report.fail(f"no bundled file has a version <= {version}")
                    return report
                with conn.transaction():
                    if ledger is None:
                        ledger_table.create_ledger(conn)
                    for migration in chosen:
                        self._record(conn, migration, execution_ms=0, success=True)
                report.applied = [AppliedFile(f.version, f.filename, 0) for f in chosen]
                report.pending = [f.filename for f in files if f.version > version]
                report.latest_version = version
                if self._runtime_role:
                    ensure_runtime_role(conn, self._runtime_role)
        return report

    # -- building blocks ---------------------------------------------------------------------

    @contextmanager
    def _run(self, action: str) -> Iterator[MigrationReport]:
        report = MigrationReport(action)
        started = time.perf_counter()
        try:
            yield report
        except FileFailed as exc:
            report.fail(str(exc))
            report.failed_file = exc.filename
            report.invalid_indexes = exc.invalid_indexes
        except (LockBusy, MigrationFileError, MigrationFailed) as exc:
            report.fail(str(exc))
        except psycopg.Error as exc:
            report.fail(f"{type(exc).__name__}: {pg_message(exc)}")
        finally:
            report.duration_ms = int((time.perf_counter() - started) * 1000)
            log = logger.info if report.ok else logger.error
            log(report.summary, extra={"migration_report": report.as_dict()})

    @contextmanager
    def _locked(self) -> Iterator[Connection]:
        with self._connect() as conn:
            wait_s = self._options.lock_wait_s
            if self._deadline is not None:
                wait_s = max(0.0, min(wait_s, self._remaining_s()))
            with AdvisoryLock(self._connect, wait_s=wait_s, sleep=self._sleep):
                yield conn

    def _connect(self) -> Connection:
        """Connect, retrying with backoff while the server is unreachable (Aurora resuming
        from 0 ACU) and refetching credentials after the first failure (rotation)."""
        budget = self._options.connect_retry_s
        if self._deadline is not None:
            budget = min(budget, self._remaining_s())
        retry = ConnectRetry(
            budget_s=budget, first_delay_s=CONNECT_FIRST_DELAY_S, max_delay_s=CONNECT_MAX_DELAY_S
        )

        def open_connection(refresh: bool) -> Connection:
            return psycopg.connect(
                self._conninfo(refresh),
                autocommit=True,
                connect_timeout=self._options.connect_timeout_s,
                application_name=self._options.application_name,
            )

        try:
            return connect_with_retry(open_connection, retry, sleep=self._sleep)
        except DatabaseUnreachable as exc:
            raise MigrationFailed(
                f"could not connect to the database after {exc.attempts} attempts "
                f"({budget:g} s): {pg_message(exc.last)}"
            ) from exc

    def _remaining_s(self) -> float:
        if self._deadline is None:
            return float("inf")
        return self._deadline - time.monotonic() - self._options.time_margin_s

    def _read_ledger(self, conn: Connection) -> tuple[list[LedgerEntry] | None, bool]:
        return read_ledger(conn, self._runtime_role.name if self._runtime_role else "")

    def _bootstrap(
        self, conn: Connection, files: Sequence[MigrationFile], report: MigrationReport
    ) -> list[LedgerEntry]:
        with conn.transaction():
            if table_exists(conn, LEDGER_TABLE):
                report.adopted_legacy = adopt_legacy(conn, files)
            else:
                ledger_table.create_ledger(conn)
        ledger, _ = self._read_ledger(conn)
        if ledger is None:
            raise MigrationFailed("the ledger could not be created")
        return ledger

    def _plan(
        self,
        files: Sequence[MigrationFile],
        ledger: list[LedgerEntry],
        report: MigrationReport,
    ) -> MigrationPlan[MigrationFile]:
        plan = plan_migrations(files, ledger, allow_out_of_order=self._options.allow_out_of_order)
        report.pending = [f.filename for f in plan.pending]
        report.ahead = [entry.name for entry in plan.ahead]
        report.drift = [d.describe() for d in plan.drift]
        report.refusals = list(plan.refusals)
        report.latest_version = max((e.version for e in ledger if e.success), default=None)
        if plan.ahead:
            report.notes.append(
                "the database is ahead of this bundle (newer versions applied than the files "
                "it carries); nothing to apply"
            )
        return plan

    def _applier(self, conn: Connection) -> FileApplier:
        return FileApplier(
            conn,
            lock_timeout_s=self._options.lock_timeout_s,
            remaining_s=self._remaining_s if self._deadline is not None else None,
            applied_by=self._options.applied_by,
        )

    def _record(
        self, conn: Connection, migration: MigrationFile, *, execution_ms: int, success: bool
    ) -> None:
        ledger_table.record(
            conn,
            migration,
            execution_ms=execution_ms,
            success=success,
            applied_by=self._options.applied_by,
        )

    def _inspect(self, action: str) -> MigrationReport:
        with self._run(action) as report:
            files = discover(self._directory)
            with self._connect() as conn:
                ledger, _ = self._read_ledger(conn)
                if ledger is None:
                    if table_exists(conn, LEDGER_TABLE):
                        report.notes.append(
                            "public.migrations is in the legacy shape; apply adopts it"
                        )
                    else:
                        report.notes.append("no ledger yet; apply creates it")
                    ledger = []
                plan = self._plan(files, ledger, report)
                report.ledger = [
                    {"version": e.version, "name": e.name, "success": e.success} for e in ledger
                ]
                if not plan.ok:
                    report.fail("; ".join(plan.refusals))
        return report


def _latest(ledger: list[LedgerEntry], applied: list[AppliedFile]) -> int | None:
    versions = [e.version for e in ledger if e.success] + [a.version for a in applied]
    return max(versions, default=None)
