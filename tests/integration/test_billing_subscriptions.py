from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from scripts.devstack.seed_catalog import find_plan
from tests.integration.conftest import World
from tests.support.handlers import call


def _history(owner, tenant_id) -> Any:
    return owner.execute(
        """
        SELECT p.slug, ts.status FROM public.tenant_subscriptions ts
        JOIN public.subscription_plans p ON p.id = ts.plan_id
        WHERE ts.tenant_id = %s ORDER BY ts.created_at, ts.status
        """,
        (tenant_id,),
    ).fetchall()


def test_the_current_subscription_is_readable_by_a_viewer(world: World) -> None:
    result = call("GET", "/api/billing/subscription", user=world.a.user("viewer"))

    assert result.status == 200
    subscription = result.body["subscription"]
    assert subscription["plan_slug"] == "professional"
    assert subscription["status"] == "active"
    assert subscription["amount"] == "797.00"


def test_a_tenant_without_subscription_has_none(world: World, owner) -> None:
    from tests.support.factories import create_tenant  # noqa: PLC0415

    fresh = create_tenant(owner)

    result = call("GET", "/api/billing/subscription", user=fresh.user("viewer"))

    assert result.body == {"subscription": None}


def test_subscribing_twice_is_refused(world: World) -> None:
    result = call(
        "POST",
        "/api/billing/subscribe",
        user=world.a.user("admin"),
        body={"plan_id": str(find_plan("starter").id)},
    )

    assert result.status == 409
    assert result.body["error"]["code"] == "already_subscribed"


def test_cancel_then_subscribe_yearly(world: World, owner) -> None:
    admin = world.a.user("admin")

    canceled = call("POST", "/api/billing/cancel", user=admin)
    again = call("POST", "/api/billing/cancel", user=admin)
    subscribed = call(
        "POST",
        "/api/billing/subscribe",
        user=admin,
        body={"plan_id": str(find_plan("starter").id), "billing_interval": "year"},
    )

    assert canceled.status == 200
    assert canceled.body["status"] == "canceled"
    assert canceled.body["canceled_at"] is not None
    assert again.status == 404
    assert again.body["error"]["code"] == "no_active_subscription"
    assert subscribed.status == 201
    assert subscribed.body["plan_slug"] == "starter"
    assert Decimal(subscribed.body["amount"]) == find_plan("starter").price_yearly
    assert _history(owner, world.a.id) == [
        {"slug": "professional", "status": "ended"},
        {"slug": "starter", "status": "active"},
    ]
    current = call("GET", "/api/billing/subscription", user=admin).body["subscription"]
    assert current["id"] == subscribed.body["id"]


def test_changing_plan_moves_the_subscription_and_the_history(world: World, owner) -> None:
    admin = world.a.user("admin")
    body = {"plan_id": str(find_plan("enterprise").id)}

    changed = call("POST", "/api/billing/change-plan", user=admin, body=body)
    unchanged = call("POST", "/api/billing/change-plan", user=admin, body=body)

    assert changed.status == unchanged.status == 200
    assert changed.body["plan_slug"] == "enterprise"
    assert changed.body["amount"] == "1497.00"
    assert changed.body["billing_interval"] == "month"
    assert unchanged.body == changed.body
    assert _history(owner, world.a.id) == [
        {"slug": "professional", "status": "ended"},
        {"slug": "enterprise", "status": "active"},
    ]


def test_changing_plan_without_subscription_is_404(world: World) -> None:
    admin = world.a.user("admin")
    call("POST", "/api/billing/cancel", user=admin)

    result = call(
        "POST",
        "/api/billing/change-plan",
        user=admin,
        body={"plan_id": str(find_plan("starter").id)},
    )

    assert result.status == 404


def test_bad_subscription_requests(world: World) -> None:
    admin = world.a.user("admin")
    call("POST", "/api/billing/cancel", user=admin)
    plan = str(find_plan("starter").id)

    unknown = call(
        "POST", "/api/billing/subscribe", user=admin, body={"plan_id": str(uuid.uuid4())}
    )
    malformed = call("POST", "/api/billing/subscribe", user=admin, body={"plan_id": "x"})
    extra = call("POST", "/api/billing/subscribe", user=admin, body={"plan_id": plan, "x": 1})
    interval = call(
        "POST",
        "/api/billing/subscribe",
        user=admin,
        body={"plan_id": plan, "billing_interval": "week"},
    )
    not_json = call("POST", "/api/billing/subscribe", user=admin, raw_body=b"{nope")

    assert unknown.status == 404
    assert unknown.body["error"]["code"] == "plan_not_found"
    assert malformed.status == extra.status == interval.status == 422
    assert not_json.status == 400
    assert {d["loc"][-1] for d in extra.body["error"]["details"]} == {"x"}


def test_an_idempotency_key_replays_the_first_subscription(world: World, owner) -> None:
    admin = world.a.user("admin")
    call("POST", "/api/billing/cancel", user=admin)
    body = {"plan_id": str(find_plan("starter").id)}
    headers = {"idempotency-key": f"subscribe-{uuid.uuid4()}"}

    first = call("POST", "/api/billing/subscribe", user=admin, body=body, headers=headers)
    replay = call("POST", "/api/billing/subscribe", user=admin, body=body, headers=headers)
    other_body = call(
        "POST",
        "/api/billing/subscribe",
        user=admin,
        body={"plan_id": str(find_plan("enterprise").id)},
        headers=headers,
    )

    assert first.status == replay.status == 201
    assert replay.body == first.body
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert other_body.status == 422
    live = owner.execute(
        "SELECT count(*) AS n FROM public.subscriptions WHERE tenant_id = %s AND status = 'active'",
        (world.a.id,),
    ).fetchone()
    assert live["n"] == 1
