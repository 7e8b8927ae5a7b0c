"""The ledger, ``public.migrations``: its shape and every statement that reads or writes it.

One row per version; a failed file is recorded with ``success = false`` and replaced when a
later run applies it. A successful row is never rewritten.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import errors

from lambdas.migrations.plan import LedgerEntry
from lambdas.shared.migration_files import MigrationFile

RUNNER_VERSION = "1.0.0"
LEDGER_TABLE = "public.migrations"

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


def create_ledger(conn: Connection) -> None:
    conn.execute(_LEDGER_DDL)


def read_ledger(conn: Connection, role: str) -> tuple[list[LedgerEntry] | None, bool]:
    """The ledger and whether the login role ``role`` exists, in one query. ``None``: no
    ledger yet, or one in the legacy shape."""
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


def record(
    conn: Connection,
    migration: MigrationFile,
    *,
    execution_ms: int,
    success: bool,
    applied_by: str | None,
    applied_at: Any = None,
    runner_version: str = RUNNER_VERSION,
) -> None:
    """Write ``migration``'s row; a row already recorded as a success is left as it is."""
    conn.execute(
        _RECORD,
        (
            migration.version,
            migration.filename,
            migration.checksum,
            applied_at,
            execution_ms,
            applied_by,
            runner_version,
            success,
        ),
    )


def invalid_indexes(conn: Connection) -> list[str]:
    """Indexes a failed ``CREATE INDEX CONCURRENTLY`` left behind, schema-qualified."""
    return [row[0] for row in conn.execute(_INVALID_INDEXES)]


def table_exists(conn: Connection, qualified: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()
    return bool(row and row[0])
