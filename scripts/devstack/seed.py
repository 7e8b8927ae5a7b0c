"""Idempotent dev seed data: the tenants and users of ``identities`` with one membership per
role. Runs as the owner; running it twice changes nothing (not even ``updated_at``)."""

from __future__ import annotations

import psycopg

from lambdas.shared.constants import TENANT_SETTING
from scripts.devstack.identities import TENANTS, USERS

_UPSERT_TENANT = """
INSERT INTO alquimista_platform.tenants AS t (id, slug, name)
VALUES (%s, %s, %s)
ON CONFLICT (id) DO UPDATE SET slug = excluded.slug, name = excluded.name
WHERE (t.slug, t.name) IS DISTINCT FROM (excluded.slug, excluded.name)
"""

# Dev users keep their identity provider subject as their id, so tokens and rows agree.
_UPSERT_USER = """
INSERT INTO alquimista_platform.users AS u (id, cognito_sub, email, full_name)
VALUES (%s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET email = excluded.email, full_name = excluded.full_name
WHERE (u.email, u.full_name) IS DISTINCT FROM (excluded.email, excluded.full_name)
"""

_UPSERT_MEMBERSHIP = """
INSERT INTO alquimista_platform.memberships AS m (tenant_id, user_id, role_id, joined_at)
SELECT %s, %s, r.id, now() FROM alquimista_platform.roles AS r WHERE r.name = %s
ON CONFLICT (tenant_id, user_id) DO UPDATE SET role_id = excluded.role_id
WHERE m.role_id IS DISTINCT FROM excluded.role_id
"""


def seed_dev_data(conninfo: str) -> None:
    """Insert the dev tenants, users and memberships; running it twice changes nothing."""
    with psycopg.connect(conninfo) as conn, conn.transaction():
        for tenant in TENANTS:
            conn.execute(_UPSERT_TENANT, (tenant.id, tenant.slug, tenant.name))
        for user in USERS:
            full_name = f"{user.role.title()} {user.tenant.name.split()[0]}"
            conn.execute(_UPSERT_USER, (user.sub, user.sub, user.email, full_name))
            # memberships are tenant-isolated: scope the insert the way the API does
            conn.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(user.tenant.id)))
            conn.execute(_UPSERT_MEMBERSHIP, (user.tenant.id, user.sub, user.role))
