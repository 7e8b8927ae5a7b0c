from __future__ import annotations

from scripts.devstack.identities import TENANTS
from scripts.devstack.seed_catalog import (
    AGENTS,
    DEV_SUBSCRIPTIONS,
    PLANS,
    SUBNUCLEOS,
    find_plan,
    seed_catalog,
    seed_dev_subscriptions,
)

COUNTS = """
SELECT (SELECT count(*) FROM public.subscription_plans) AS plans,
       (SELECT count(*) FROM public.subnucleos) AS subnucleos,
       (SELECT count(*) FROM alquimista_platform.agents) AS agents,
       (SELECT count(*) FROM public.subnucleo_agents) AS links,
       (SELECT count(*) FROM public.subscription_plan_subnucleos) AS plan_links,
       (SELECT max(updated_at) FROM alquimista_platform.agents) AS touched
"""


def test_the_catalog_seed_is_idempotent(db) -> None:
    seed_catalog(db.owner_url)
    with db.owner() as conn:
        first = conn.execute(COUNTS).fetchone()

    seed_catalog(db.owner_url)
    with db.owner() as conn:
        second = conn.execute(COUNTS).fetchone()

    assert first == second
    assert first["plans"] == len(PLANS) == 3
    assert first["subnucleos"] == len(SUBNUCLEOS)
    assert first["agents"] == len(AGENTS) == 10
    assert first["links"] == len(AGENTS)


def test_dev_subscriptions_skip_missing_tenants_and_subscribe_existing_ones(db) -> None:
    seed_catalog(db.owner_url)
    seed_dev_subscriptions(db.owner_url)  # no dev tenants yet: nothing to do
    acme = next(t for t in TENANTS if t.slug == "acme")
    with db.owner() as conn:
        assert conn.execute("SELECT count(*) AS n FROM public.subscriptions").fetchone()["n"] == 0
        conn.execute(
            "INSERT INTO alquimista_platform.tenants (id, slug, name) VALUES (%s, %s, %s)",
            (acme.id, acme.slug, acme.name),
        )

    seed_dev_subscriptions(db.owner_url)
    seed_dev_subscriptions(db.owner_url)

    with db.owner() as conn:
        rows = conn.execute(
            "SELECT tenant_id, plan_id, status FROM public.subscriptions"
        ).fetchall()
    assert rows == [
        {
            "tenant_id": acme.id,
            "plan_id": find_plan(DEV_SUBSCRIPTIONS["acme"]).id,
            "status": "active",
        }
    ]
