from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from scripts.devstack.seed_catalog import AGENTS, find_agent, find_subnucleo
from tests.integration.conftest import World
from tests.support.factories import create_trial
from tests.support.handlers import call

SALES_AGENT = find_agent("sdr-prospector")  # in "vendas": Professional has it, Starter not
MARKETING_AGENT = find_agent("content-writer")  # in "marketing": only Enterprise has it


def _rows(owner, table: str, tenant_id):
    return owner.execute(
        f"SELECT * FROM {table} WHERE tenant_id = %s ORDER BY created_at", (tenant_id,)
    ).fetchall()


def test_the_catalog_pages_by_cursor_through_every_agent(world: World) -> None:
    viewer = world.a.user("viewer")
    seen: list[str] = []
    query = "limit=3"
    while True:
        page = call("GET", "/api/agents", user=viewer, query=query)
        assert page.status == 200
        seen += [agent["slug"] for agent in page.body["items"]]
        if page.body["next_cursor"] is None:
            break
        query = f"limit=3&cursor={page.body['next_cursor']}"

    assert seen == sorted(agent.slug for agent in AGENTS)


def test_the_catalog_filters_by_category_and_subnucleo(world: World) -> None:
    viewer = world.a.user("viewer")

    support = call("GET", "/api/agents", user=viewer, query="category=support")
    vendas = call("GET", "/api/agents", user=viewer, query="subnucleo=vendas&category=sales")
    none = call("GET", "/api/agents", user=viewer, query="subnucleo=vendas&category=support")

    assert {a["slug"] for a in support.body["items"]} == {
        a.slug for a in AGENTS if a.category == "support"
    }
    assert {a["slug"] for a in vendas.body["items"]} == {
        a.slug for a in AGENTS if a.subnucleo == "vendas"
    }
    assert all(a["subnucleos"] == ["vendas"] for a in vendas.body["items"])
    assert none.body == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "query", ["cursor=%%%", "cursor=", "limit=0", "limit=101", "category=Not-Valid"]
)
def test_bad_catalog_queries_are_422(world: World, query: str) -> None:
    result = call("GET", "/api/agents", user=world.a.user("viewer"), query=query)

    assert result.status == 422, result.body
    assert result.body["error"]["code"] in {"validation_error", "invalid_cursor"}


def test_one_agent_by_id_and_unknown_or_malformed_ids(world: World) -> None:
    viewer = world.a.user("viewer")

    found = call("GET", f"/api/agents/{SALES_AGENT.id}", user=viewer)
    missing = call("GET", f"/api/agents/{uuid.uuid4()}", user=viewer)
    malformed = call("GET", "/api/agents/123", user=viewer)

    assert found.status == 200
    assert found.body["slug"] == SALES_AGENT.slug
    assert found.body["subnucleos"] == ["vendas"]
    assert missing.status == 404
    assert malformed.status == 422


def test_an_admin_activates_an_agent_of_the_plan_once(world: World, owner) -> None:
    admin = world.a.user("admin")
    path = f"/api/agents/{SALES_AGENT.id}/activate"

    first = call("POST", path, user=admin)
    second = call("POST", path, user=admin)

    assert first.status == second.status == 200
    assert first.body == second.body
    assert first.body["status"] == "active"
    assert first.body["source"] == "plan"
    assert first.body["activated_by"] == str(admin.id)
    activations = _rows(owner, "alquimista_platform.agent_activations", world.a.id)
    entitlements = _rows(owner, "public.tenant_agents", world.a.id)
    assert [(r["agent_id"], r["status"]) for r in activations] == [(SALES_AGENT.id, "active")]
    assert activations[0]["updated_at"] == activations[0]["created_at"]  # second call wrote nothing
    assert [(r["agent_id"], r["source"], r["status"]) for r in entitlements] == [
        (SALES_AGENT.id, "plan", "active")
    ]
    active = call("GET", "/api/agents/active", user=world.a.user("viewer"))
    assert [item["agent"]["slug"] for item in active.body["items"]] == [SALES_AGENT.slug]


def test_an_agent_outside_the_plan_is_refused_and_nothing_is_written(world: World, owner) -> None:
    result = call("POST", f"/api/agents/{SALES_AGENT.id}/activate", user=world.b.user("admin"))

    assert result.status == 409
    assert result.body["error"]["code"] == "agent_not_entitled"
    assert _rows(owner, "alquimista_platform.agent_activations", world.b.id) == []
    assert _rows(owner, "public.tenant_agents", world.b.id) == []


def test_a_trial_of_the_subnucleo_or_of_the_agent_covers_it(world: World, owner) -> None:
    admin = world.b.user("admin")
    create_trial(owner, world.b, subnucleo_id=find_subnucleo("marketing").id)
    create_trial(owner, world.b, agent_id=SALES_AGENT.id)

    by_subnucleo = call("POST", f"/api/agents/{MARKETING_AGENT.id}/activate", user=admin)
    by_agent = call("POST", f"/api/agents/{SALES_AGENT.id}/activate", user=admin)

    assert by_subnucleo.status == by_agent.status == 200
    assert by_subnucleo.body["source"] == by_agent.body["source"] == "trial"


def test_an_expired_or_used_up_trial_does_not_cover(world: World, owner) -> None:
    admin = world.b.user("admin")
    create_trial(
        owner,
        world.b,
        subnucleo_id=find_subnucleo("marketing").id,
        expires_at=datetime.now().astimezone() - timedelta(minutes=1),
    )
    create_trial(owner, world.b, agent_id=SALES_AGENT.id, max_usage=5, usage_count=5)

    assert call("POST", f"/api/agents/{MARKETING_AGENT.id}/activate", user=admin).status == 409
    assert call("POST", f"/api/agents/{SALES_AGENT.id}/activate", user=admin).status == 409


def test_deactivation_is_idempotent_and_recorded(world: World, owner) -> None:
    admin = world.a.user("admin")
    never = call("POST", f"/api/agents/{SALES_AGENT.id}/deactivate", user=admin)
    call("POST", f"/api/agents/{SALES_AGENT.id}/activate", user=admin)

    first = call("POST", f"/api/agents/{SALES_AGENT.id}/deactivate", user=admin)
    second = call("POST", f"/api/agents/{SALES_AGENT.id}/deactivate", user=admin)

    assert never.status == 200
    assert never.body["status"] == "deactivated"
    assert first.status == second.status == 200
    assert first.body == second.body
    assert first.body["deactivated_at"] is not None
    [activation] = _rows(owner, "alquimista_platform.agent_activations", world.a.id)
    [entitlement] = _rows(owner, "public.tenant_agents", world.a.id)
    assert (activation["status"], entitlement["status"]) == ("deactivated", "inactive")
    assert call("GET", "/api/agents/active", user=admin).body == {"items": []}


def test_members_and_viewers_cannot_activate(world: World) -> None:
    for role in ("member", "viewer"):
        result = call("POST", f"/api/agents/{SALES_AGENT.id}/activate", user=world.a.user(role))
        assert result.status == 403


def test_a_tenant_never_sees_another_tenants_activations(world: World) -> None:
    call("POST", f"/api/agents/{SALES_AGENT.id}/activate", user=world.a.user("admin"))

    theirs = call("GET", "/api/agents/active", user=world.b.user("admin"))

    assert theirs.body == {"items": []}
