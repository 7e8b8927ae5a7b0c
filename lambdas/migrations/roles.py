"""The runtime login role the API Lambdas use, kept in step with the schema by every run that
changes it."""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from lambdas.migrations.ledger import LEDGER_TABLE, Connection, table_exists
from lambdas.migrations.legacy import LEGACY_TABLE

_GRANTS = (
    "GRANT USAGE ON SCHEMA {schema} TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
    "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {role}",
)

# Written only through SECURITY DEFINER functions (024_audit_chain.sql): the runtime role reads.
APPEND_ONLY_TABLES = ("alquimista_platform.audit_logs", "alquimista_platform.audit_heads")
# The RBAC catalog: which permissions each role holds is decided by migrations, as the owner;
# a request that could write it could grant itself anything. Memberships are another table.
RBAC_CATALOG_TABLES = (
    "alquimista_platform.roles",
    "alquimista_platform.permissions",
    "alquimista_platform.role_permissions",
)
# SECURITY DEFINER functions whose EXECUTE is revoked from PUBLIC and granted to this role only.
RUNTIME_FUNCTIONS = (
    "knowledge.search_chunks_v1(public.vector, text, text, integer, integer, integer)",
    "knowledge.search_chunks_v2("
    "public.vector, text, text, integer, integer, integer, integer, integer)",
    "knowledge.search_chunks_v3("
    "public.vector, text, text, integer, integer, integer, integer, integer)",
    "knowledge.index_pending_embeddings_v1(integer)",
)


@dataclass(frozen=True)
class RuntimeRole:
    """The login role the API Lambdas use: owns nothing, never bypasses RLS.

    Without a password the role's grants are still kept in step with the schema.
    """

    name: str
    password: str | None = field(default=None, repr=False)


def ensure_runtime_role(conn: Connection, role: RuntimeRole) -> None:
    """Create or update the runtime login role: data access only (DML on tables, now and on
    tables created later by the owner), read-only on the ledger, the audit chain and the RBAC
    catalog, owner of nothing, and never BYPASSRLS."""
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
            for grant in _GRANTS:
                conn.execute(sql.SQL(grant).format(schema=target, role=ident))
        read_only = (LEDGER_TABLE, f"public.{LEGACY_TABLE}", *APPEND_ONLY_TABLES)
        for table in (*read_only, *RBAC_CATALOG_TABLES):
            if table_exists(conn, table):
                conn.execute(
                    sql.SQL("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(
                        sql.SQL(table), ident
                    )
                )
        for function in RUNTIME_FUNCTIONS:
            found = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (function,)).fetchone()
            if found and found[0]:
                conn.execute(
                    sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(function), ident)
                )
