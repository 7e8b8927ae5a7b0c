"""Adopting the legacy ``public.migrations``: the hand-run process recorded the files it
applied with psql in a table of its own shape. The first ``apply`` converts it into the ledger
and keeps the old table as ``public.migrations_legacy``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from psycopg import sql

from lambdas.migrations.ledger import Connection, create_ledger, record, table_exists
from lambdas.migrations.report import MigrationFailed
from lambdas.shared.migration_files import MigrationFile

LEGACY_TABLE = "migrations_legacy"
LEGACY_APPLIED_BY = "legacy"
LEGACY_RUNNER_VERSION = "legacy-adopted"

_VERSION_COLUMNS = ("version", "filename", "file_name", "name", "migration", "script")
_TIME_COLUMNS = ("applied_at", "executed_at", "installed_on", "run_at", "created_at")
_LEADING_NUMBER = re.compile(r"^\s*0*(\d+)")

_COLUMNS = """
SELECT column_name FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = 'migrations'
ORDER BY ordinal_position
"""


def adopt_legacy(conn: Connection, files: Sequence[MigrationFile]) -> dict[str, Any]:
    """Convert the legacy table into the ledger, in the caller's transaction: every bundled
    file up to the newest legacy version counts as applied (a baseline), with its legacy
    timestamp when the old table had one. Returns what was adopted, for the report."""
    columns = [row[0] for row in conn.execute(_COLUMNS)]
    version_columns = [c for c in _VERSION_COLUMNS if c in columns]
    time_column = next((c for c in _TIME_COLUMNS if c in columns), None)
    if not version_columns:
        raise MigrationFailed(
            "public.migrations exists but is neither the ledger nor a known legacy shape "
            f"(columns: {', '.join(columns)})"
        )
    if table_exists(conn, f"public.{LEGACY_TABLE}"):
        raise MigrationFailed(f"cannot adopt: public.{LEGACY_TABLE} already exists")
    applied_at = _legacy_versions(conn, version_columns, time_column)
    if not applied_at:
        raise MigrationFailed(
            "public.migrations is in the legacy shape but none of its rows names a version"
        )
    newest = max(applied_at)
    conn.execute(
        sql.SQL("ALTER TABLE public.migrations RENAME TO {}").format(sql.Identifier(LEGACY_TABLE))
    )
    create_ledger(conn)
    adopted = [f for f in files if f.version <= newest]
    for migration in adopted:
        record(
            conn,
            migration,
            execution_ms=0,
            success=True,
            applied_at=applied_at.get(migration.version),
            applied_by=LEGACY_APPLIED_BY,
            runner_version=LEGACY_RUNNER_VERSION,
        )
    return {
        "legacy_versions": sorted(applied_at),
        "baseline_version": newest,
        "recorded": [f.filename for f in adopted],
        "kept_as": f"public.{LEGACY_TABLE}",
    }


def _legacy_versions(
    conn: Connection, version_columns: list[str], time_column: str | None
) -> dict[int, Any]:
    """Each version the legacy rows name, with when it was applied (None if unknown)."""
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
        version = _leading_version(row[:-1])
        if version is not None:
            applied_at.setdefault(version, row[-1])
    return applied_at


def _leading_version(values: Sequence[Any]) -> int | None:
    for value in values:
        if value is not None and (found := _LEADING_NUMBER.match(str(value))):
            return int(found.group(1))
    return None
