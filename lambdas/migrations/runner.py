"""Applies ``database/migrations`` in order and records each file in ``public.migrations``.

Minimal runner used to boot the platform; the migrations issue grows it into the full runner
(validation, locks, status/plan/baseline) behind the same entry points.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from lambdas.shared.migration_files import MIGRATIONS_DIR, MigrationFile, discover

RUNNER_VERSION = "0.1.0"

Connect = Callable[[], psycopg.Connection[Any]]

_LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS public.migrations (
    version        integer PRIMARY KEY,
    name           text NOT NULL,
    checksum       text NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    execution_ms   integer NOT NULL,
    applied_by     text NOT NULL DEFAULT current_user,
    runner_version text NOT NULL,
    success        boolean NOT NULL
)
"""


@dataclass(frozen=True)
class RuntimeRole:
    """The login role the API Lambdas use: owns nothing, never bypasses RLS."""

    name: str
    password: str = field(repr=False)


@dataclass
class ApplyReport:
    applied: list[str] = field(default_factory=list)
    skipped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"action": "apply", "applied": self.applied, "already_applied": self.skipped}


class MigrationRunner:
    def __init__(
        self,
        connect: Connect,
        *,
        directory: Path = MIGRATIONS_DIR,
        runtime_role: RuntimeRole | None = None,
    ) -> None:
        self._connect = connect
        self._files = discover(directory)
        self._runtime_role = runtime_role

    def apply(self) -> ApplyReport:
        report = ApplyReport()
        with self._connect() as conn:
            conn.execute(_LEDGER_DDL)
            conn.commit()
            done = {row[0] for row in conn.execute("SELECT version FROM public.migrations")}
            for migration in self._files:
                if migration.version in done:
                    report.skipped += 1
                    continue
                self._apply_one(conn, migration)
                report.applied.append(migration.filename)
            if self._runtime_role:
                ensure_runtime_role(conn, self._runtime_role)
        return report

    def _apply_one(self, conn: psycopg.Connection[Any], migration: MigrationFile) -> None:
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(migration.sql.encode())
            conn.execute(
                """
                INSERT INTO public.migrations
                    (version, name, checksum, execution_ms, runner_version, success)
                VALUES (%s, %s, %s, %s, %s, true)
                """,
                (
                    migration.version,
                    migration.name,
                    migration.checksum,
                    int((time.perf_counter() - started) * 1000),
                    RUNNER_VERSION,
                ),
            )


def ensure_runtime_role(conn: psycopg.Connection[Any], role: RuntimeRole) -> None:
    """Create or update the runtime login role and grant it data access, nothing more."""
    ident = sql.Identifier(role.name)
    with conn.transaction():
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role.name,)).fetchone()
        verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
        conn.execute(
            sql.SQL(
                "{} ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD {}"
            ).format(verb, ident, sql.Literal(role.password))
        )
        schemas = [
            row[0]
            for row in conn.execute(
                """
                SELECT nspname FROM pg_namespace
                WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
                """
            )
        ]
        for schema in schemas:
            target = sql.Identifier(schema)
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(target, ident))
            conn.execute(
                sql.SQL(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}"
                ).format(target, ident)
            )
            conn.execute(
                sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
                    target, ident
                )
            )
            conn.execute(
                sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {} TO {}").format(target, ident)
            )
        conn.execute(
            sql.SQL("REVOKE INSERT, UPDATE, DELETE ON public.migrations FROM {}").format(ident)
        )
