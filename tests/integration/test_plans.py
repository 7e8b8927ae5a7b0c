from __future__ import annotations

import uuid

from scripts.devstack.seed_catalog import PLANS, find_plan
from tests.integration.conftest import World
from tests.support.handlers import call


def test_plans_list_every_plan_with_subnucleos_agents_and_prices(world: World) -> None:
    result = call("GET", "/api/plans", user=world.a.user("viewer"))

    assert result.status == 200
    plans = {plan["slug"]: plan for plan in result.body["items"]}
    assert set(plans) == {plan.slug for plan in PLANS}
    professional = plans["professional"]
    assert professional["price_monthly"] == "797.00"
    assert [s["slug"] for s in professional["subnucleos"]] == ["vendas", "atendimento"]
    vendas = professional["subnucleos"][0]
    assert {a["slug"] for a in vendas["agents"]} >= {"sdr-prospector", "lead-qualifier"}


def test_one_plan_by_id(world: World) -> None:
    plan = find_plan("enterprise")

    result = call("GET", f"/api/plans/{plan.id}", user=world.a.user("member"))

    assert result.status == 200
    assert result.body["slug"] == "enterprise"
    assert len(result.body["subnucleos"]) == 4


def test_an_unknown_plan_is_404_and_a_malformed_id_is_422(world: World) -> None:
    missing = call("GET", f"/api/plans/{uuid.uuid4()}", user=world.a.user("viewer"))
    malformed = call("GET", "/api/plans/not-a-uuid", user=world.a.user("viewer"))

    assert missing.status == 404
    assert missing.body["error"]["code"] == "plan_not_found"
    assert malformed.status == 422
    assert malformed.body["error"]["code"] == "validation_error"


def test_a_retired_plan_is_not_listed(world: World, owner) -> None:
    owner.execute("UPDATE public.subscription_plans SET is_active = false WHERE slug = 'starter'")

    listed = call("GET", "/api/plans", user=world.a.user("viewer"))
    one = call("GET", f"/api/plans/{find_plan('starter').id}", user=world.a.user("viewer"))

    assert "starter" not in {plan["slug"] for plan in listed.body["items"]}
    assert one.status == 404
