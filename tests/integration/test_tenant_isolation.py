"""Row-level security as the runtime role the API Lambdas connect as."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from lambdas.shared.constants import TENANT_SETTING
from tests.support.database import RUNTIME_ROLE, TestDatabase


@dataclass(frozen=True)
class TwoTenants:
    a: uuid.UUID
    b: uuid.UUID
    lead_a: uuid.UUID
    lead_b: uuid.UUID


def _new_tenant(conn: psycopg.Connection[Any]) -> uuid.UUID:
    tenant = uuid.uuid4()
    conn.execute(
        "INSERT INTO alquimista_platform.tenants (id, slug, name) VALUES (%s, %s, %s)",
        (tenant, f"t-{tenant.hex[:12]}", "Tenant"),
    )
    return tenant


def _new_lead(conn: psycopg.Connection[Any], tenant: uuid.UUID) -> uuid.UUID:
    lead = uuid.uuid4()
    conn.execute(
        "INSERT INTO nigredo_leads.leads (id, tenant_id, email) VALUES (%s, %s, %s)",
        (lead, tenant, f"{lead.hex[:8]}@example.com"),
    )
    return lead


@pytest.fixture
def tenants(db: TestDatabase) -> TwoTenants:
    with db.owner() as conn:
        a, b = _new_tenant(conn), _new_tenant(conn)
        return TwoTenants(a, b, _new_lead(conn, a), _new_lead(conn, b))


@pytest.fixture
def runtime(db: TestDatabase) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with db.runtime() as conn:
        yield conn


def _scope(conn: psycopg.Connection[Any], tenant: uuid.UUID | None) -> None:
    """What ``Database.begin`` does at the start of each transaction."""
    conn.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(tenant or "")))


def test_a_tenant_reads_only_its_own_rows(runtime, tenants) -> None:
    _scope(runtime, tenants.a)

    rows = runtime.execute("SELECT id, tenant_id FROM nigredo_leads.leads").fetchall()

    assert rows == [{"id": tenants.lead_a, "tenant_id": tenants.a}]


def test_a_tenant_cannot_change_or_delete_another_tenants_rows(runtime, tenants, db) -> None:
    _scope(runtime, tenants.a)

    updated = runtime.execute(
        "UPDATE nigredo_leads.leads SET status = 'lost' WHERE id = %s", (tenants.lead_b,)
    ).rowcount
    deleted = runtime.execute(
        "DELETE FROM nigredo_leads.leads WHERE id = %s", (tenants.lead_b,)
    ).rowcount
    runtime.commit()

    assert (updated, deleted) == (0, 0)
    with db.owner() as conn:
        row = conn.execute(
            "SELECT status FROM nigredo_leads.leads WHERE id = %s", (tenants.lead_b,)
        ).fetchone()
    assert row == {"status": "new"}


def test_a_tenant_cannot_write_rows_into_another_tenant(runtime, tenants) -> None:
    _scope(runtime, tenants.a)

    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        runtime.execute(
            "INSERT INTO nigredo_leads.leads (tenant_id, email) VALUES (%s, 'x@example.com')",
            (tenants.b,),
        )


def test_a_tenant_cannot_move_its_row_to_another_tenant(runtime, tenants) -> None:
    _scope(runtime, tenants.a)

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        runtime.execute(
            "UPDATE nigredo_leads.leads SET tenant_id = %s WHERE id = %s",
            (tenants.b, tenants.lead_a),
        )


@pytest.mark.parametrize("setting", [None, ""], ids=["never-set", "empty"])
def test_an_unset_tenant_sees_and_writes_nothing(runtime, tenants, db, setting) -> None:
    if setting is not None:
        runtime.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, setting))

    tenant_tables = runtime.execute(
        """
        SELECT format('%I.%I', table_schema, table_name) AS name
        FROM information_schema.columns WHERE column_name = 'tenant_id'
          AND table_schema IN ('public', 'alquimista_platform', 'nigredo_leads', 'fibonacci_core')
        """
    ).fetchall()
    counts = {
        t["name"]: runtime.execute(f"SELECT count(*) AS n FROM {t['name']}").fetchone()
        for t in tenant_tables
    }

    assert len(counts) >= 20
    assert all(count == {"n": 0} for count in counts.values()), counts
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        runtime.execute(
            "INSERT INTO nigredo_leads.leads (tenant_id, email) VALUES (%s, 'y@example.com')",
            (tenants.a,),
        )


def test_the_runtime_role_owns_nothing_and_cannot_bypass_rls(db) -> None:
    with db.owner() as conn:
        role = conn.execute(
            """
            SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolcanlogin,
                   (SELECT count(*) FROM pg_class WHERE relowner = r.oid) AS owned_relations,
                   (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid) AS owned_schemas,
                   (SELECT count(*) FROM pg_proc WHERE proowner = r.oid) AS owned_functions
            FROM pg_roles r WHERE rolname = %s
            """,
            (RUNTIME_ROLE,),
        ).fetchone()

    assert role == {
        "rolsuper": False,
        "rolbypassrls": False,
        "rolcreaterole": False,
        "rolcreatedb": False,
        "rolcanlogin": True,
        "owned_relations": 0,
        "owned_schemas": 0,
        "owned_functions": 0,
    }


# Each statement would succeed if the role could write: valid rows, conflicts skipped, and
# updates and deletes that match nothing (privileges are checked before any row is touched).
@pytest.mark.parametrize(
    "write",
    [
        "INSERT INTO alquimista_platform.roles (name, description, rank) VALUES ('root', 'x', 99)",
        "UPDATE alquimista_platform.roles SET description = 'x' WHERE name = 'nobody'",
        "DELETE FROM alquimista_platform.roles WHERE name = 'nobody'",
        "INSERT INTO alquimista_platform.permissions (code, description) VALUES ('all:all', 'x')",
        "UPDATE alquimista_platform.permissions SET description = 'x' WHERE code = 'no:body'",
        "DELETE FROM alquimista_platform.permissions WHERE code = 'no:body'",
        "INSERT INTO alquimista_platform.role_permissions (role_id, permission_id) "
        "SELECT r.id, p.id FROM alquimista_platform.roles r, alquimista_platform.permissions p "
        "ON CONFLICT DO NOTHING",
        "UPDATE alquimista_platform.role_permissions SET role_id = role_id WHERE false",
        "DELETE FROM alquimista_platform.role_permissions WHERE false",
    ],
)
def test_the_runtime_role_only_reads_the_rbac_catalog(runtime, write) -> None:
    granted = runtime.execute(
        "SELECT count(*) AS n FROM alquimista_platform.role_permissions"
    ).fetchone()
    assert granted["n"] > 0

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        runtime.execute(write)


def test_the_runtime_role_only_reads_the_ledger(runtime) -> None:
    assert runtime.execute("SELECT count(*) AS n FROM public.migrations").fetchone()["n"] > 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        runtime.execute("UPDATE public.migrations SET success = true")


def test_memberships_are_unique_per_tenant_and_user(db, tenants) -> None:
    with db.owner() as conn:
        user = conn.execute(
            """
            INSERT INTO alquimista_platform.users (cognito_sub, email)
            VALUES (gen_random_uuid(), %s) RETURNING id
            """,
            (f"{uuid.uuid4().hex[:8]}@example.com",),
        ).fetchone()["id"]
        insert = """
            INSERT INTO alquimista_platform.memberships (tenant_id, user_id, role_id)
            SELECT %s, %s, id FROM alquimista_platform.roles WHERE name = %s
        """
        conn.execute(insert, (tenants.a, user, "viewer"))
        conn.execute(insert, (tenants.b, user, "admin"))

        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, (tenants.a, user, "admin"))
