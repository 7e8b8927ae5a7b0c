from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from lambdas.billing.repository import BillingUnitOfWork
from lambdas.billing.services import trials as service
from lambdas.shared.constants import TRIAL_DURATION_DAYS, TRIAL_MAX_USAGE
from lambdas.shared.runtime import get_runtime
from scripts.devstack.seed_catalog import find_agent, find_subnucleo
from tests.integration.conftest import World
from tests.support.factories import create_trial
from tests.support.handlers import call

MARKETING = find_subnucleo("marketing")


def test_an_admin_starts_one_trial_per_product(world: World) -> None:
    admin = world.b.user("admin")
    body = {"subnucleo_id": str(MARKETING.id)}

    started = call("POST", "/api/billing/trials", user=admin, body=body)
    again = call("POST", "/api/billing/trials", user=admin, body=body)

    assert started.status == 201
    trial = started.body
    assert trial["status"] == "active"
    assert (trial["max_usage"], trial["usage_count"]) == (TRIAL_MAX_USAGE, 0)
    expires = datetime.fromisoformat(trial["expires_at"])
    expected = datetime.now(UTC) + timedelta(days=TRIAL_DURATION_DAYS)
    assert abs((expires - expected).total_seconds()) < 60
    assert again.status == 409
    assert again.body["error"]["code"] == "trial_already_used"
    listed = call("GET", "/api/billing/trials", user=world.b.user("viewer"))
    assert [t["id"] for t in listed.body["items"]] == [trial["id"]]


def test_a_trial_lets_the_admin_activate_an_agent_of_its_subnucleo(world: World) -> None:
    admin = world.b.user("admin")
    call("POST", "/api/billing/trials", user=admin, body={"subnucleo_id": str(MARKETING.id)})

    activated = call("POST", f"/api/agents/{find_agent('content-writer').id}/activate", user=admin)

    assert activated.status == 200
    assert activated.body["source"] == "trial"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"agent_id": str(uuid.uuid4()), "subnucleo_id": str(uuid.uuid4())},
        {"agent_id": "nope"},
        {"agent_id": str(find_agent("content-writer").id), "extra": True},
    ],
)
def test_a_trial_needs_exactly_one_well_formed_target(world: World, body) -> None:
    result = call("POST", "/api/billing/trials", user=world.b.user("admin"), body=body)

    assert result.status == 422


def test_a_trial_of_an_unknown_product_is_404(world: World) -> None:
    result = call(
        "POST",
        "/api/billing/trials",
        user=world.b.user("admin"),
        body={"agent_id": str(uuid.uuid4())},
    )

    assert result.status == 404


def test_usage_is_counted_until_the_trial_runs_out(world: World, owner) -> None:
    trial_id = create_trial(owner, world.b, subnucleo_id=MARKETING.id, max_usage=2)
    member = world.b.user("member")
    path = f"/api/billing/trials/{trial_id}/usage"

    first = call("POST", path, user=member)
    second = call("POST", path, user=member)
    third = call("POST", path, user=member)
    usage = call("GET", path, user=world.b.user("viewer"))

    assert (first.body["usage_count"], second.body["usage_count"]) == (1, 2)
    assert third.status == 409
    assert third.body["error"]["code"] == "trial_not_active"
    assert usage.body["status"] == "expired"
    assert usage.body["remaining_usage"] == 0


def test_another_tenants_trial_is_404(world: World, owner) -> None:
    theirs = create_trial(owner, world.b, subnucleo_id=MARKETING.id)
    admin = world.a.user("admin")

    assert call("GET", f"/api/billing/trials/{theirs}/usage", user=admin).status == 404
    assert call("POST", f"/api/billing/trials/{theirs}/usage", user=admin).status == 404
    count = owner.execute("SELECT usage_count FROM public.trials WHERE id = %s", (theirs,))
    assert count.fetchone()["usage_count"] == 0


def test_expire_trials_expires_past_and_used_up_trials_in_every_tenant(world: World, owner) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    expired_a = create_trial(owner, world.a, subnucleo_id=MARKETING.id, expires_at=past)
    used_up_b = create_trial(owner, world.b, subnucleo_id=MARKETING.id, max_usage=1, usage_count=1)
    live_b = create_trial(owner, world.b, agent_id=find_agent("content-writer").id)

    with get_runtime().request_scope(request_id="job", read_only=False) as scope:
        expired = service.expire_trials(lambda: BillingUnitOfWork(scope, None))

    statuses = {
        row["id"]: row["status"]
        for row in owner.execute("SELECT id, status FROM public.trials").fetchall()
    }
    assert expired == 2
    assert statuses == {expired_a: "expired", used_up_b: "expired", live_b: "active"}
