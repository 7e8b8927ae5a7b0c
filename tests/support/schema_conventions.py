"""Reads the catalog of a migrated database and names every object that breaks the schema
conventions of ARCHITECTURE.md §4, as ``schema.table.column: rule``."""

from __future__ import annotations

from typing import Any

import psycopg

EXEMPT_TABLES = frozenset({"public.migrations"})  # the ledger: integer versions by design
# Global-or-tenant tables: tenant_id NULL is a global row every tenant reads and only operators
# write (knowledge.enable_global_or_tenant_rls); the other tenant rules still apply.
GLOBAL_OR_TENANT_TABLES = frozenset(
    {"knowledge.documents", "knowledge.chunks", "knowledge.embeddings"}
)

_TABLES = """
SELECT c.oid, n.nspname || '.' || c.relname AS name, c.relrowsecurity, c.relforcerowsecurity
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
ORDER BY 2
"""

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull, a.attnum
FROM pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
"""

_FOREIGN_KEYS = """
SELECT con.conname, con.confdeltype,
       (SELECT string_agg(a.attname, ',') FROM unnest(con.conkey) k
        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k) AS columns
FROM pg_constraint con WHERE con.conrelid = %s AND con.contype = 'f'
"""

_INDEXES = """
SELECT i.indisunique, i.indisprimary, i.indkey::int2[] AS keys,
       pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i WHERE i.indrelid = %s
"""

_POLICIES = """
SELECT polname, pg_get_expr(polqual, polrelid) AS using_expr,
       pg_get_expr(polwithcheck, polrelid) AS check_expr
FROM pg_policy WHERE polrelid = %s
"""

_TRIGGERS = """
SELECT tgname FROM pg_trigger WHERE tgrelid = %s AND NOT tgisinternal
"""

_TENANT_EXPRESSION = "NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text))::uuid"


def convention_violations(conn: psycopg.Connection[Any]) -> list[str]:
    found: list[str] = []
    for table_oid, table, rls, forced in conn.execute(_TABLES).fetchall():
        if table in EXEMPT_TABLES:
            continue
        columns = {row[0]: row for row in conn.execute(_COLUMNS, (table_oid,)).fetchall()}
        indexes = conn.execute(_INDEXES, (table_oid,)).fetchall()
        found.extend(_column_violations(table, columns))
        found.extend(_table_violations(conn, table_oid, table, columns, indexes))
        if "tenant_id" in columns:
            found.extend(
                _tenant_violations(
                    conn, table_oid, table, columns=columns, indexes=indexes, rls=rls, forced=forced
                )
            )
    return found


def _column_violations(table: str, columns: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for name, type_name, _, _ in columns.values():
        where = f"{table}.{name}"
        if type_name == "json":
            found.append(f"{where}: json column (use jsonb)")
        if type_name.startswith("timestamp") and "with time zone" not in type_name:
            found.append(f"{where}: timestamp without time zone (use timestamptz)")
        if name == "meta_data":
            found.append(f"{where}: named meta_data (use metadata)")
    for column in ("created_at", "updated_at"):
        if column not in columns or columns[column][1] != "timestamp with time zone":
            found.append(f"{table}.{column}: missing (timestamptz expected)")
    return found


def _table_violations(
    conn: psycopg.Connection[Any],
    table_oid: int,
    table: str,
    columns: dict[str, Any],
    indexes: list[Any],
) -> list[str]:
    found: list[str] = []
    triggers = {row[0] for row in conn.execute(_TRIGGERS, (table_oid,)).fetchall()}
    if "set_updated_at" not in triggers:
        found.append(f"{table}.updated_at: no set_updated_at trigger")
    for conname, on_delete, fk_columns in conn.execute(_FOREIGN_KEYS, (table_oid,)):
        if on_delete == "a":
            found.append(f"{table}.{fk_columns}: foreign key {conname} states no ON DELETE")
    primary = [keys for _, is_pk, keys, _ in indexes if is_pk]
    by_number = {row[3]: row for row in columns.values()}
    if len(primary) != 1 or len(primary[0]) != 1 or by_number[primary[0][0]][1] != "uuid":
        found.append(f"{table}.id: primary key is not a single uuid column")
    return found


def _tenant_violations(
    conn: psycopg.Connection[Any],
    table_oid: int,
    table: str,
    *,
    columns: dict[str, Any],
    indexes: list[Any],
    rls: bool,
    forced: bool,
) -> list[str]:
    found: list[str] = []
    where = f"{table}.tenant_id"
    tenant_number = columns["tenant_id"][3]
    global_or_tenant = table in GLOBAL_OR_TENANT_TABLES
    if global_or_tenant == bool(columns["tenant_id"][2]):
        found.append(
            f"{where}: NOT NULL on a global-or-tenant table"
            if global_or_tenant
            else f"{where}: nullable on a tenant-owned table"
        )
    if not any(keys and keys[0] == tenant_number for _, _, keys, _ in indexes):
        found.append(f"{where}: no index led by tenant_id")
    for unique, is_pk, keys, definition in indexes:
        if unique and not is_pk and tenant_number not in keys:
            found.append(f"{where}: unique key without the tenant ({definition})")
    if not (rls and forced):
        found.append(f"{where}: row-level security not enabled and forced")
    policies = conn.execute(_POLICIES, (table_oid,)).fetchall()
    if not any(
        _TENANT_EXPRESSION in (using or "") and _TENANT_EXPRESSION in (check or "")
        for _, using, check in policies
    ):
        found.append(f"{where}: no policy on current_setting('app.current_tenant_id', true)")
    if global_or_tenant and not any(
        (using or "").startswith("((tenant_id IS NULL) OR") and check is None
        for _, using, check in policies
    ):
        found.append(f"{where}: no read-only policy for the global rows (tenant_id IS NULL)")
    return found
