from __future__ import annotations

import importlib

import pytest

from lambdas.shared.routes import GROUPS, ROUTES, Route

OPENAPI_METHODS = ("get", "post", "put", "patch", "delete")


def _declared_by_handler(group: str) -> set[tuple[str, str]]:
    app = importlib.import_module(f"lambdas.{group}.handler").app
    schema = app.get_openapi_schema()
    return {
        (method.upper(), path)
        for path, item in (schema.paths or {}).items()
        for method in OPENAPI_METHODS
        if getattr(item, method, None) is not None
    }


def test_route_keys_use_api_gateway_syntax() -> None:
    route = Route("GET", "/api/agents/{agent_id}", "agents")

    assert route.route_key == "GET /api/agents/{agent_id}"
    assert route.resolver_path == "/api/agents/<agent_id>"
    assert route.handler == "lambdas.agents.handler.lambda_handler"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/agents/abc", {"agent_id": "abc"}),
        ("/api/agents/abc/", {"agent_id": "abc"}),
        ("/api/agents", None),
        ("/api/agents/abc/activate", None),
        ("/api/agent/abc", None),
    ],
)
def test_a_route_matches_only_paths_of_its_shape(
    path: str, expected: dict[str, str] | None
) -> None:
    assert Route("GET", "/api/agents/{agent_id}", "agents").match(path) == expected


def test_route_keys_are_unique() -> None:
    keys = [route.route_key for route in ROUTES]

    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("group", GROUPS)
def test_each_group_handler_declares_exactly_the_table_routes(group: str) -> None:
    # The table is the single source of routes: a handler route missing from it would never be
    # deployed, and a table route missing from the handler would deploy to a 404.
    in_table = {(r.method, r.path) for r in ROUTES if r.group == group}

    assert _declared_by_handler(group) == in_table


def test_health_is_public() -> None:
    public = {route.route_key for route in ROUTES if route.public}

    assert "GET /health" in public


def test_every_protected_route_names_a_permission_and_no_public_one_does() -> None:
    for route in ROUTES:
        assert (route.permission is None) == route.public, route.route_key


def test_only_probes_webhooks_sales_contact_and_capture_forms_are_public() -> None:
    public = {route.route_key for route in ROUTES if route.public}

    assert public <= {
        "GET /health",
        "POST /api/billing/commercial-requests",
        "POST /api/billing/webhooks/{provider}",
        "POST /api/leads/forms/{form_id}/submissions",
    }
