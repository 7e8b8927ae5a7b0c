from __future__ import annotations

from lambdas.shared.routes import ROUTES, match


def test_a_literal_segment_wins_over_a_parameter() -> None:
    found = match("GET", "/api/agents/active")

    assert found is not None
    assert found.route is not None
    assert found.route.path == "/api/agents/active"
    assert found.params == {}


def test_a_parameter_is_captured() -> None:
    found = match("post", "/api/agents/abc/activate")

    assert found is not None
    assert found.route is not None
    assert found.route.route_key == "POST /api/agents/{agent_id}/activate"
    assert found.params == {"agent_id": "abc"}


def test_a_path_served_only_by_other_methods_names_them() -> None:
    found = match("HEAD", "/api/billing/trials")

    assert found is not None
    assert found.route is None
    assert found.allowed == ("GET", "POST")


def test_an_unknown_path_matches_nothing() -> None:
    assert match("GET", "/api/nothing") is None
    assert match("GET", "/api/agents/x/y/z") is None


def test_every_table_route_matches_itself() -> None:
    for route in ROUTES:
        found = match(route.method, route.path.replace("{", "").replace("}", ""))
        assert found is not None
        assert found.route == route
