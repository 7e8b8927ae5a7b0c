"""Test data: tenants with one user per role, the catalog, subscriptions and trials.

Ids are fresh for every call (never literals shared between tests), and nothing here depends on
the dev seed, so these rows can live beside it in the same database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from lambdas.migrations.memberships import MembershipStatus, add_membership
from scripts.devstack.seed_catalog import find_plan, insert_subscription, write_catalog

Conn = psycopg.Connection[dict[str, Any]]
ROLES = ("admin", "member", "viewer")


@dataclass(frozen=True)
class TestUser:
    __test__ = False

    id: uuid.UUID
    sub: uuid.UUID
    email: str
    role: str
    tenant_id: uuid.UUID

    def claims(self) -> dict[str, str]:
        """The claims API Gateway's JWT authorizer passes for this user's ID token."""
        return {
            "sub": str(self.sub),
            "email": self.email,
            "custom:tenant_id": str(self.tenant_id),
        }


@dataclass(frozen=True)
class TestTenant:
    __test__ = False

    id: uuid.UUID
    slug: str
    users: dict[str, TestUser] = field(default_factory=dict)

    def user(self, role: str) -> TestUser:
        return self.users[role]


def _one(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        raise LookupError("the statement returned no row")
    return row


def _scoped(conn: Conn, tenant_id: uuid.UUID) -> None:
    conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant_id),))


def create_catalog(conn: Conn) -> None:
    with conn.transaction():
        write_catalog(conn)


def create_user(
    conn: Conn, tenant_id: uuid.UUID, role: str, *, status: MembershipStatus = "active"
) -> TestUser:
    sub = uuid.uuid4()
    email = f"{role}-{sub.hex[:10]}@example.com"
    with conn.transaction():
        user_id = _one(
            conn.execute(
                """
            INSERT INTO alquimista_platform.users (cognito_sub, email, full_name)
            VALUES (%s, %s, %s) RETURNING id
            """,
                (sub, email, f"Test {role}"),
            ).fetchone()
        )["id"]
        add_membership(conn, tenant_id=tenant_id, user_id=user_id, role=role, status=status)
    return TestUser(user_id, sub, email, role, tenant_id)


def create_tenant(conn: Conn, *, plan: str | None = None, status: str = "active") -> TestTenant:
    """A tenant with an active admin, member and viewer, subscribed to ``plan`` if given."""
    slug = f"t-{uuid.uuid4().hex[:12]}"
    with conn.transaction():
        tenant_id = _one(
            conn.execute(
                """
            INSERT INTO alquimista_platform.tenants (slug, name, status)
            VALUES (%s, %s, %s) RETURNING id
            """,
                (slug, f"Tenant {slug}", status),
            ).fetchone()
        )["id"]
    tenant = TestTenant(tenant_id, slug)
    for role in ROLES:
        tenant.users[role] = create_user(conn, tenant_id, role)
    if plan:
        subscribe(conn, tenant, plan)
    return tenant


def subscribe(conn: Conn, tenant: TestTenant, plan: str) -> None:
    with conn.transaction():
        insert_subscription(conn, tenant.id, find_plan(plan))


def create_trial(
    conn: Conn,
    tenant: TestTenant,
    *,
    agent_id: uuid.UUID | None = None,
    subnucleo_id: uuid.UUID | None = None,
    expires_at: datetime | None = None,
    max_usage: int = 10,
    usage_count: int = 0,
) -> uuid.UUID:
    with conn.transaction():
        _scoped(conn, tenant.id)
        row = _one(
            conn.execute(
                """
            INSERT INTO public.trials
                (tenant_id, agent_id, subnucleo_id, started_at, expires_at, max_usage,
                 usage_count)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id
            """,
                (
                    tenant.id,
                    agent_id,
                    subnucleo_id,
                    (expires_at or datetime.now().astimezone()) - timedelta(days=30),
                    expires_at or datetime.now().astimezone() + timedelta(days=7),
                    max_usage,
                    usage_count,
                ),
            ).fetchone()
        )
    trial_id: uuid.UUID = row["id"]
    return trial_id
