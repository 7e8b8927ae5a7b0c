from __future__ import annotations

from scripts.devstack.identities import TENANTS, USERS
from scripts.devstack.seed import seed_dev_data

_SNAPSHOT = """
SELECT 'tenant' AS kind, id::text, slug AS key, updated_at::text FROM alquimista_platform.tenants
    WHERE slug <> 'platform'
UNION ALL
SELECT 'user', id::text, email, updated_at::text FROM alquimista_platform.users
UNION ALL
SELECT 'membership', m.id::text, m.tenant_id || ':' || m.user_id || ':' || r.name,
       m.updated_at::text
FROM alquimista_platform.memberships m JOIN alquimista_platform.roles r ON r.id = m.role_id
UNION ALL
SELECT 'subscription', id::text, tenant_id || ':' || status, updated_at::text
FROM public.subscriptions
UNION ALL
SELECT 'catalog', md5(string_agg(slug || updated_at::text, ',' ORDER BY slug)), 'agents', ''
FROM alquimista_platform.agents
ORDER BY 1, 3
"""


def test_seeding_creates_the_dev_identities_with_one_membership_per_role(db) -> None:
    seed_dev_data(db.owner_url)

    with db.owner() as conn:
        tenants = conn.execute(  # the reserved platform tenant (migration 029) is not seeded
            "SELECT id, slug FROM alquimista_platform.tenants WHERE slug <> 'platform'"
        ).fetchall()
        members = conn.execute(
            """
            SELECT u.cognito_sub, u.email, m.tenant_id, r.name AS role
            FROM alquimista_platform.memberships m
            JOIN alquimista_platform.users u ON u.id = m.user_id
            JOIN alquimista_platform.roles r ON r.id = m.role_id
            """
        ).fetchall()
    assert {(t["id"], t["slug"]) for t in tenants} == {(t.id, t.slug) for t in TENANTS}
    assert {(m["cognito_sub"], m["email"], m["tenant_id"], m["role"]) for m in members} == {
        (u.sub, u.email, u.tenant.id, u.role) for u in USERS
    }


def test_seeding_twice_changes_nothing(db) -> None:
    seed_dev_data(db.owner_url)
    with db.owner() as conn:
        first = conn.execute(_SNAPSHOT).fetchall()

    seed_dev_data(db.owner_url)

    with db.owner() as conn:
        second = conn.execute(_SNAPSHOT).fetchall()
    assert first == second
    assert len(first) == len(TENANTS) + 2 * len(USERS) + len(TENANTS) + 1


def test_seeding_gives_each_dev_tenant_a_live_subscription_on_the_catalog(db) -> None:
    seed_dev_data(db.owner_url)

    with db.owner() as conn:
        plans = conn.execute("SELECT count(*) AS n FROM public.subscription_plans").fetchone()
        live = conn.execute(
            """
            SELECT count(DISTINCT tenant_id) AS n FROM public.subscriptions
            WHERE status IN ('active', 'trialing')
            """
        ).fetchone()
    assert plans == {"n": 3}
    assert live == {"n": len(TENANTS)}
