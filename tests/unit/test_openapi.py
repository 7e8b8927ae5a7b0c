from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import jsonschema
import pytest
from openapi_spec_validator import validate
from pydantic import ValidationError

from lambdas.agents.service import encode_cursor
from lambdas.billing.models import StartTrialRequest
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


def test_the_published_spec_is_a_valid_openapi_document() -> None:
    validate(json.loads(DOCS.read_text()))


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        ({"agent_id": str(uuid.uuid4())}, True),
        ({"subnucleo_id": str(uuid.uuid4())}, True),
        ({"agent_id": str(uuid.uuid4()), "subnucleo_id": None}, True),
        ({"agent_id": str(uuid.uuid4()), "subnucleo_id": str(uuid.uuid4())}, False),
        ({}, False),
        ({"agent_id": None, "subnucleo_id": None}, False),
    ],
)
def test_the_trial_body_rule_in_the_schema_is_the_one_the_model_enforces(
    body: dict[str, object], accepted: bool
) -> None:
    schemas = build_openapi()["components"]["schemas"]
    schema = {**schemas["StartTrialRequest"], "components": {"schemas": schemas}}

    by_schema = jsonschema.Draft202012Validator(schema).is_valid(body)
    try:
        StartTrialRequest.model_validate(body)
        by_model = True
    except ValidationError:
        by_model = False

    assert by_schema == by_model == accepted


def test_the_cursor_the_api_returns_fits_the_documented_pattern() -> None:
    pattern = build_openapi()["paths"]["/api/agents"]["get"]["parameters"]
    cursor = next(p for p in pattern if p["name"] == "cursor")
    regex = next(o["pattern"] for o in cursor["schema"]["anyOf"] if o.get("type") == "string")

    for slug in ("a", "crm-agent", "x" * 63, "ação"):
        assert re.fullmatch(regex, encode_cursor(slug))
    assert "opaque" in cursor["description"].lower()
