from __future__ import annotations

from pathlib import Path

from lambdas.shared.routes import ROUTES
from scripts.devstack.openapi import build_openapi, render

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_docs_openapi_json_is_current() -> None:
    # When this fails, run `make openapi` and commit docs/openapi.json.
    assert DOCS.read_text() == render(build_openapi())


def test_every_table_route_is_documented_with_its_security() -> None:
    spec = build_openapi()

    for route in ROUTES:
        operation = spec["paths"][route.path][route.method.lower()]
        if route.public:
            assert "security" not in operation, route.route_key
        else:
            assert operation["security"] == [{"jwt": []}], route.route_key
            assert "401" in operation["responses"], route.route_key


def test_errors_are_documented_with_the_platform_error_body() -> None:
    schemas = build_openapi()["components"]["schemas"]

    assert "HTTPValidationError" not in schemas
    assert set(schemas["ErrorBody"]["properties"]) == {"error"}
