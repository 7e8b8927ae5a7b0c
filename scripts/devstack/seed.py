"""Idempotent dev seed data: the tenants and users of ``identities`` with one membership per
role, the plan/subnúcleo/agent catalog, and a subscription for each dev tenant. Runs as the
owner; running it twice changes nothing (not even ``updated_at``)."""

from __future__ import annotations

import psycopg

from lambdas.migrations.memberships import GrantMembership, grant_membership
from scripts.devstack.identities import USERS
from scripts.devstack.seed_catalog import seed_catalog, seed_dev_subscriptions


def seed_dev_data(conninfo: str) -> None:
    """Insert the dev tenants, users, memberships, catalog and subscriptions; running it twice
    changes nothing."""
    seed_identities(conninfo)
    seed_catalog(conninfo)
    seed_dev_subscriptions(conninfo)


def seed_identities(conninfo: str) -> None:
    """The dev tenants and one user per role in each."""
    with psycopg.connect(conninfo) as conn, conn.transaction():
        for user in USERS:
            # Dev users keep their identity provider subject as their id, so tokens and rows agree.
            grant_membership(
                conn,
                GrantMembership(
                    tenant_slug=user.tenant.slug,
                    tenant_name=user.tenant.name,
                    tenant_id=user.tenant.id,
                    cognito_sub=user.sub,
                    user_id=user.sub,
                    email=user.email,
                    full_name=f"{user.role.title()} {user.tenant.name.split()[0]}",
                    role=user.role,
                ),
            )
