"""Billing rules that live once, in versioned SQL functions (migration 022), and the one writer
of the legacy plan history; run as the runtime role, so row-level security applies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from lambdas.billing.services import subscriptions
from scripts.devstack.seed_catalog import dev_subscription_ids, find_plan
from tests.integration.conftest import World
from tests.support.database import TestDatabase
from tests.support.factories import create_trial
from tests.support.handlers import call

Conn = psycopg.Connection[Any]


@pytest.mark.parametrize(
    ("status", "live"),
    [("active", True), ("past_due", True), ("trialing", True), ("canceled", False)],
)
def test_which_statuses_are_live_is_one_function(owner: Conn, status: str, live: bool) -> None:
    row = owner.execute("SELECT public.subscription_is_live_v1(%s) AS live", (status,)).fetchone()

    assert row is not None
    assert row["live"] is live


def test_the_one_live_subscription_index_states_its_rule_through_the_function(
    owner: Conn,
) -> None:
    row = owner.execute(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'subscriptions_one_live_per_tenant_key'"
    ).fetchone()

    assert row is not None
    assert "subscription_is_live_v1(status)" in row["indexdef"]


_TRIALS = {
    "usable": {"days": 3, "max_usage": 5, "usage_count": 4},
    "used_up": {"days": 3, "max_usage": 5, "usage_count": 5},
    "expired": {"days": -1, "max_usage": 5, "usage_count": 0},
}


def test_usable_trials_agree_across_the_api_the_job_and_agent_entitlement(
    world: World, owner: Conn, db: TestDatabase
) -> None:
    # Given three trials of tenant a: usable, used up, past its time
    from scripts.devstack.seed_catalog import AGENTS  # noqa: PLC0415

    trial_ids = {
        name: create_trial(
            owner,
            world.a,
            agent_id=AGENTS[index].id,
            expires_at=datetime.now(UTC) + timedelta(days=spec["days"]),
            max_usage=spec["max_usage"],
            usage_count=spec["usage_count"],
        )
        for index, (name, spec) in enumerate(_TRIALS.items())
    }

    # When the API reads them, and the job expires what is not usable
    member = world.a.user("member")
    statuses = {
        name: call("GET", f"/api/billing/trials/{trial_id}/usage", user=member).body["status"]
        for name, trial_id in trial_ids.items()
    }
    with db.runtime() as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(world.a.id),))
        usable = conn.execute(
            """
            SELECT t.id FROM public.trials AS t
            WHERE public.trial_is_usable_v1(t) AND t.tenant_id = %s
            """,
            (world.a.id,),
        ).fetchall()
        expired_row = conn.execute("SELECT public.expire_trials() AS n").fetchone()
        assert expired_row is not None
        expired = expired_row["n"]

    # Then every place draws the same line
    assert statuses == {"usable": "active", "used_up": "expired", "expired": "expired"}
    assert [row["id"] for row in usable] == [trial_ids["usable"]]
    assert expired == 2
    rows = owner.execute(
        "SELECT id, status FROM public.trials WHERE tenant_id = %s", (world.a.id,)
    ).fetchall()
    assert {row["id"]: row["status"] for row in rows} == {
        trial_ids["usable"]: "active",
        trial_ids["used_up"]: "expired",
        trial_ids["expired"]: "expired",
    }


def _plan_periods(owner: Conn, tenant_id: Any) -> list[tuple[str, str]]:
    rows = owner.execute(
        """
        SELECT p.slug, ts.status
        FROM public.tenant_subscriptions AS ts
        JOIN public.subscription_plans AS p ON p.id = ts.plan_id
        WHERE ts.tenant_id = %s ORDER BY ts.started_at, ts.created_at
        """,
        (tenant_id,),
    ).fetchall()
    return [(row["slug"], row["status"]) for row in rows]


def test_the_plan_history_follows_the_subscription_whoever_writes_it(
    world: World, owner: Conn
) -> None:
    admin = world.a.user("admin")
    # the seed wrote only the subscription; the trigger opened its plan period
    assert _plan_periods(owner, world.a.id) == [("professional", "active")]

    call(
        "POST",
        "/api/billing/change-plan",
        user=admin,
        body={"plan_id": str(find_plan("starter").id)},
    )
    with owner.transaction():
        owner.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(world.a.id),))
        owner.execute(
            "UPDATE public.subscriptions SET status = 'past_due' WHERE tenant_id = %s",
            (world.a.id,),
        )
        owner.execute(
            "UPDATE public.subscriptions SET status = 'active' WHERE tenant_id = %s",
            (world.a.id,),
        )
    call("POST", "/api/billing/cancel", user=admin)

    assert _plan_periods(owner, world.a.id) == [("professional", "ended"), ("starter", "ended")]
    assert _plan_periods(owner, world.b.id) == [("starter", "active")]


def test_a_subscribe_race_lost_on_the_unique_index_gets_the_pre_checks_answer(
    world: World, owner: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the pre-check misses the live subscription, as a concurrent request's would
    from lambdas.billing.repositories.subscriptions import SubscriptionRepository  # noqa: PLC0415

    monkeypatch.setattr(SubscriptionRepository, "live", lambda self: None)

    result = call(
        "POST",
        "/api/billing/subscribe",
        user=world.a.user("admin"),
        body={"plan_id": str(find_plan("starter").id)},
    )

    assert result.status == 409
    assert result.body["error"]["code"] == subscriptions.AlreadySubscribed.code
    assert "_key" not in result.body["error"]["message"]


def test_a_trial_race_lost_on_the_unique_index_gets_the_pre_checks_answer(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambdas.billing.repositories.trials import TrialRepository  # noqa: PLC0415
    from scripts.devstack.seed_catalog import AGENTS  # noqa: PLC0415

    admin = world.a.user("admin")
    body = {"agent_id": str(AGENTS[0].id)}
    assert call("POST", "/api/billing/trials", user=admin, body=body).status == 201
    monkeypatch.setattr(TrialRepository, "exists_for", lambda self, **kw: False)

    again = call("POST", "/api/billing/trials", user=admin, body=body)

    assert again.status == 409
    assert again.body["error"]["code"] == "trial_already_used"


def test_locating_a_provider_subscription_searches_every_tenant_and_restores_the_caller(
    world: World, db: TestDatabase
) -> None:
    _, sub_b, cus_b = dev_subscription_ids(world.b.id)
    with db.runtime() as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(world.a.id),))
        by_subscription = conn.execute(
            "SELECT * FROM public.billing_locate_subscription_v1('stripe', NULL, %s, NULL)",
            (sub_b,),
        ).fetchall()
        by_customer = conn.execute(
            "SELECT * FROM public.billing_locate_subscription_v1('stripe', NULL, NULL, %s)",
            (cus_b,),
        ).fetchall()
        other_provider = conn.execute(
            "SELECT * FROM public.billing_locate_subscription_v1('mercadopago', NULL, %s, NULL)",
            (sub_b,),
        ).fetchall()
        caller = conn.execute("SELECT current_setting('app.current_tenant_id') AS t").fetchone()

    assert [row["tenant_id"] for row in by_subscription] == [world.b.id]
    assert by_customer == by_subscription
    assert other_provider == []
    assert caller is not None
    assert caller["t"] == str(world.a.id)
