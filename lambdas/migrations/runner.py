"""The migration runner: one core used by the Lambda (custom resource and direct invocation)
and by ``scripts/migrate.py``.

A run: lease (DynamoDB, optional) -> connect (retried while Aurora resumes) -> advisory lock
(dedicated connection) -> read the ledger in one query -> validate the bundle against it ->
apply each pending file in its own transaction and record it -> sync the runtime role ->
unlock. Every failure comes back as a report with ``ok = False`` and a message naming the
file; nothing is half-recorded.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors, sql

from lambdas.migrations.locks import AdvisoryLock
from lambdas.migrations.plan import LedgerEntry, MigrationPlan, plan_migrations
from lambdas.migrations.statements import is_no_transaction, split_statements
from lambdas.shared.locks import LockBusy
from lambdas.shared.migration_files import (
    MIGRATIONS_DIR,
    MigrationFile,
    MigrationFileError,
    discover,
)
from lambdas.shared.observability import logger

RUNNER_VERSION = "1.0.0"
APPLICATION_NAME = "alquimista-migrations"
LEGACY_TABLE = "migrations_legacy"
# Written only through SECURITY DEFINER functions (024_audit_chain.sql): the runtime role reads.
APPEND_ONLY_TABLES = ("alquimista_platform.audit_logs", "alquimista_platform.audit_heads")

ConninfoSource = Callable[[bool], str]
"""Returns a libpq connection string; called with ``True`` to refetch rotated credentials."""
Connection = psycopg.Connection[tuple[Any, ...]]

_LEDGER_DDL = """
CREATE TABLE public.migrations (
    version        integer NOT NULL,
    name           text NOT NULL,
    checksum       text NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    execution_ms   integer NOT NULL,
    applied_by     text NOT NULL DEFAULT current_user,
    runner_version text NOT NULL,
    success        boolean NOT NULL,
    CONSTRAINT migrations_ledger_pkey PRIMARY KEY (version)
)
"""

_READ_LEDGER = """
SELECT m.version, m.name, m.checksum, m.success, r.present
FROM (SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s) AS present) AS r
LEFT JOIN public.migrations AS m ON true
ORDER BY m.version
"""

_RECORD = """
INSERT INTO public.migrations AS m
    (version, name, checksum, applied_at, execution_ms, applied_by, runner_version, success)
VALUES (%s, %s, %s, coalesce(%s, now()), %s, coalesce(%s, current_user), %s, %s)
ON CONFLICT (version) DO UPDATE SET
    name = excluded.name,
    checksum = excluded.checksum,
    applied_at = excluded.applied_at,
    execution_ms = excluded.execution_ms,
    applied_by = excluded.applied_by,
    runner_version = excluded.runner_version,
    success = excluded.success
WHERE NOT m.success
"""

_INVALID_INDEXES = """
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_index AS i
JOIN pg_class AS c ON c.oid = i.indexrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid
ORDER BY 1
"""

_LEGACY_VERSION_COLUMNS = ("version", "filename", "file_name", "name", "migration", "script")
_LEGACY_TIME_COLUMNS = ("applied_at", "executed_at", "installed_on", "run_at", "created_at")
_LEADING_NUMBER = re.compile(r"^\s*0*(\d+)")


@dataclass(frozen=True)
class RuntimeRole:
    """The login role the API Lambdas use: owns nothing, never bypasses RLS.

    Without a password the role's grants are still kept in step with the schema.
    """

    name: str
    password: str | None = field(default=None, repr=False)


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


class _FileFailed(RuntimeError):
    def __init__(self, filename: str, message: str, invalid_indexes: list[str]) -> None:
        super().__init__(message)
        self.filename = filename
        self.invalid_indexes = invalid_indexes


class MigrationRunner:
    """Applies ``database/migrations`` to one database, recording each file in the ledger."""

    def __init__(
        self,
        conninfo: ConninfoSource | str,
        *,
        directory: Path = MIGRATIONS_DIR,
        runtime_role: RuntimeRole | None = None,
        options: RunnerOptions | None = None,
        lease: AbstractContextManager[Any] | None = None,
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
        self._lease = lease
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
                for migration in plan.pending:
                    report.applied.append(self._apply_file(conn, migration))
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
                if ledger is None and _table_exists(conn, "public.migrations"):
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
                        conn.execute(_LEDGER_DDL)
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
        except _FileFailed as exc:
            report.fail(str(exc))
            report.failed_file = exc.filename
            report.invalid_indexes = exc.invalid_indexes
        except (LockBusy, MigrationFileError, MigrationFailed) as exc:
            report.fail(str(exc))
        except psycopg.Error as exc:
            report.fail(f"{type(exc).__name__}: {_pg_message(exc)}")
        finally:
            report.duration_ms = int((time.perf_counter() - started) * 1000)
            log = logger.info if report.ok else logger.error
            log(report.summary, extra={"migration_report": report.as_dict()})

    @contextmanager
    def _locked(self) -> Iterator[Connection]:
        with self._lease or nullcontext(), self._connect() as conn:
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
        give_up = time.monotonic() + budget
        delay, refresh, attempt = 0.5, False, 1
        while True:
            try:
                return psycopg.connect(
                    self._conninfo(refresh),
                    autocommit=True,
                    connect_timeout=self._options.connect_timeout_s,
                    application_name=self._options.application_name,
                )
            except psycopg.OperationalError as exc:
                if time.monotonic() + delay >= give_up:
                    raise MigrationFailed(
                        f"could not connect to the database after {attempt} attempts "
                        f"({budget:g} s): {_pg_message(exc)}"
                    ) from exc
                logger.warning(
                    "database not reachable yet; retrying",
                    extra={"attempt": attempt, "retry_in_s": delay},
                )
                self._sleep(delay)
                delay, refresh, attempt = min(delay * 2, 10.0), True, attempt + 1

    def _remaining_s(self) -> float:
        if self._deadline is None:
            return float("inf")
        return self._deadline - time.monotonic() - self._options.time_margin_s

    def _read_ledger(self, conn: Connection) -> tuple[list[LedgerEntry] | None, bool]:
        """The ledger and whether the runtime role exists, in one query. ``None``: no ledger
        yet, or one in the legacy shape."""
        role = self._runtime_role.name if self._runtime_role else ""
        try:
            rows = conn.execute(_READ_LEDGER, (role,)).fetchall()
        except (errors.UndefinedTable, errors.UndefinedColumn):
            return None, False
        ledger = [
            LedgerEntry(int(version), str(name), str(checksum), bool(success))
            for version, name, checksum, success, _ in rows
            if version is not None
        ]
        return ledger, bool(rows[0][4])

    def _bootstrap(
        self, conn: Connection, files: Sequence[MigrationFile], report: MigrationReport
    ) -> list[LedgerEntry]:
        with conn.transaction():
            if _table_exists(conn, "public.migrations"):
                report.adopted_legacy = self._adopt_legacy(conn, files)
            else:
                conn.execute(_LEDGER_DDL)
        ledger, _ = self._read_ledger(conn)
        if ledger is None:
            raise MigrationFailed("the ledger could not be created")
        return ledger

    def _adopt_legacy(self, conn: Connection, files: Sequence[MigrationFile]) -> dict[str, Any]:
        """Convert the hand-run process's ``public.migrations`` into the ledger: every bundled
        file up to the newest legacy version counts as applied (a baseline); the old table is
        kept as ``public.migrations_legacy``."""
        columns = [
            row[0]
            for row in conn.execute(
                """
                SELECT column_name FROM information_schema.columns
                WHERE table_schema = 'public' AND table_name = 'migrations'
                ORDER BY ordinal_position
                """
            )
        ]
        version_columns = [c for c in _LEGACY_VERSION_COLUMNS if c in columns]
        time_column = next((c for c in _LEGACY_TIME_COLUMNS if c in columns), None)
        if not version_columns:
            raise MigrationFailed(
                "public.migrations exists but is neither the ledger nor a known legacy shape "
                f"(columns: {', '.join(columns)})"
            )
        if _table_exists(conn, f"public.{LEGACY_TABLE}"):
            raise MigrationFailed(f"cannot adopt: public.{LEGACY_TABLE} already exists")
        selected: list[sql.Composable] = [
            sql.SQL("{}::text").format(sql.Identifier(c)) for c in version_columns
        ]
        selected.append(
            sql.SQL("{}::timestamptz").format(sql.Identifier(time_column))
            if time_column
            else sql.SQL("NULL::timestamptz")
        )
        rows = conn.execute(
            sql.SQL("SELECT {} FROM public.migrations").format(sql.SQL(", ").join(selected))
        ).fetchall()
        applied_at: dict[int, Any] = {}
        for row in rows:
            version = _legacy_version(row[:-1])
            if version is not None:
                applied_at.setdefault(version, row[-1])
        if not applied_at:
            raise MigrationFailed(
                "public.migrations is in the legacy shape but none of its rows names a version"
            )
        newest = max(applied_at)
        conn.execute(
            sql.SQL("ALTER TABLE public.migrations RENAME TO {}").format(
                sql.Identifier(LEGACY_TABLE)
            )
        )
        conn.execute(_LEDGER_DDL)
        adopted = [f for f in files if f.version <= newest]
        for migration in adopted:
            self._record(
                conn,
                migration,
                execution_ms=0,
                success=True,
                applied_at=applied_at.get(migration.version),
                applied_by="legacy",
                runner_version="legacy-adopted",
            )
        return {
            "legacy_versions": sorted(applied_at),
            "baseline_version": newest,
            "recorded": [f.filename for f in adopted],
            "kept_as": f"public.{LEGACY_TABLE}",
        }

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

    def _apply_file(self, conn: Connection, migration: MigrationFile) -> AppliedFile:
        started = time.perf_counter()
        logger.info("applying migration", extra={"file": migration.filename})
        try:
            if is_no_transaction(migration.sql):
                self._run_without_transaction(conn, migration)
                execution_ms = _elapsed_ms(started)
                with conn.transaction():
                    self._record(conn, migration, execution_ms=execution_ms, success=True)
            else:
                with conn.transaction():
                    self._set_timeouts(conn, migration, local=True)
                    conn.execute(migration.sql.encode())
                    execution_ms = _elapsed_ms(started)
                    self._record(conn, migration, execution_ms=execution_ms, success=True)
        except _FileFailed:
            raise
        except psycopg.Error as exc:
            raise self._failure(conn, migration, exc, started, first_line=1) from exc
        return AppliedFile(migration.version, migration.filename, execution_ms)

    def _run_without_transaction(self, conn: Connection, migration: MigrationFile) -> None:
        started = time.perf_counter()
        for statement in split_statements(migration.sql):
            self._set_timeouts(conn, migration, local=False)
            try:
                conn.execute(statement.text.encode())
            except psycopg.Error as exc:
                raise self._failure(
                    conn,
                    migration,
                    exc,
                    started,
                    first_line=statement.line,
                    statement=statement.text,
                    no_transaction=True,
                ) from exc

    def _failure(
        self,
        conn: Connection,
        migration: MigrationFile,
        exc: psycopg.Error,
        started: float,
        *,
        first_line: int,
        statement: str | None = None,
        no_transaction: bool = False,
    ) -> _FileFailed:
        text = statement if statement is not None else migration.sql
        position = exc.diag.statement_position
        line = first_line
        if position and position.isdigit():
            line += text[: int(position) - 1].count("\n")
        message = f"{migration.filename} (line {line}): {_pg_message(exc)}"
        invalid: list[str] = []
        if not conn.broken:
            if no_transaction:
                invalid = [row[0] for row in conn.execute(_INVALID_INDEXES)]
                if invalid:
                    message += (
                        f"; it left INVALID indexes: {', '.join(invalid)} "
                        "(drop them before re-running)"
                    )
            with conn.transaction():
                self._record(conn, migration, execution_ms=_elapsed_ms(started), success=False)
        return _FileFailed(migration.filename, message, invalid)

    def _set_timeouts(self, conn: Connection, migration: MigrationFile, *, local: bool) -> None:
        lock_ms = int(self._options.lock_timeout_s * 1000)
        statement_ms = 0
        if self._deadline is not None:
            statement_ms = int(self._remaining_s() * 1000)
            if statement_ms < 1000:
                raise MigrationFailed(
                    f"{migration.filename}: not started, too little time left in this "
                    "invocation; re-run to continue"
                )
            lock_ms = min(lock_ms, statement_ms)
        conn.execute(
            """
            SELECT set_config('statement_timeout', %s, %s), set_config('lock_timeout', %s, %s)
            """,
            (str(statement_ms), local, str(lock_ms), local),
        )

    def _record(
        self,
        conn: Connection,
        migration: MigrationFile,
        *,
        execution_ms: int,
        success: bool,
        applied_at: Any = None,
        applied_by: str | None = None,
        runner_version: str = RUNNER_VERSION,
    ) -> None:
        conn.execute(
            _RECORD,
            (
                migration.version,
                migration.filename,
                migration.checksum,
                applied_at,
                execution_ms,
                applied_by or self._options.applied_by,
                runner_version,
                success,
            ),
        )

    def _inspect(self, action: str) -> MigrationReport:
        with self._run(action) as report:
            files = discover(self._directory)
            with self._connect() as conn:
                ledger, _ = self._read_ledger(conn)
                if ledger is None:
                    if _table_exists(conn, "public.migrations"):
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


def ensure_runtime_role(conn: Connection, role: RuntimeRole) -> None:
    """Create or update the runtime login role: data access only (DML on tables, now and on
    tables created later by the owner), read-only on the ledger, owner of nothing, and never
    BYPASSRLS."""
    ident = sql.Identifier(role.name)
    with conn.transaction():
        exists = conn.execute(
            """
            SELECT 1 FROM pg_roles WHERE rolname = %s
            """,
            (role.name,),
        ).fetchone()
        attributes = sql.SQL("LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT")
        statement = sql.SQL("{} ROLE {} WITH {}").format(
            sql.SQL("ALTER" if exists else "CREATE"), ident, attributes
        )
        if role.password is not None:
            statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(role.password))
        conn.execute(statement)
        schemas = [
            row[0]
            for row in conn.execute(
                """
                SELECT nspname FROM pg_namespace
                WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
                ORDER BY nspname
                """
            )
        ]
        for schema in schemas:
            target = sql.Identifier(schema)
            for grant in (
                "GRANT USAGE ON SCHEMA {schema} TO {role}",
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
                "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
                "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
                "GRANT USAGE, SELECT ON SEQUENCES TO {role}",
            ):
                conn.execute(sql.SQL(grant).format(schema=target, role=ident))
        for table in ("public.migrations", f"public.{LEGACY_TABLE}", *APPEND_ONLY_TABLES):
            if _table_exists(conn, table):
                conn.execute(
                    sql.SQL("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(
                        sql.SQL(table), ident
                    )
                )


def _table_exists(conn: Connection, qualified: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()
    return bool(row and row[0])


def _legacy_version(values: Sequence[Any]) -> int | None:
    for value in values:
        if value is not None and (found := _LEADING_NUMBER.match(str(value))):
            return int(found.group(1))
    return None


def _latest(ledger: list[LedgerEntry], applied: list[AppliedFile]) -> int | None:
    versions = [e.version for e in ledger if e.success] + [a.version for a in applied]
    return max(versions, default=None)


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _pg_message(exc: psycopg.Error) -> str:
    diag = exc.diag
    primary = diag.message_primary or str(exc).strip()
    code = f"[{diag.sqlstate}] " if diag.sqlstate else ""
    detail = f" ({diag.message_detail})" if diag.message_detail else ""
    return f"{code}{primary}{detail}"
