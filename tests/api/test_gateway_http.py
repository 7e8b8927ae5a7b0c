from __future__ import annotations

import pytest

from lambdas.shared.constants import MAX_BODY_BYTES, SERVICE_NAME
from lambdas.shared.routes import ROUTES
from tests.api.conftest import ApiClient

PROTECTED = [route for route in ROUTES if not route.public]


def _concrete(path: str) -> str:
    return path.replace("{", "").replace("}", "")


def test_health_over_http(api: ApiClient) -> None:
    response = api.http.get("/health")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["service"] == SERVICE_NAME
    assert body["db_status"] == "connected"
    assert body["migrations"]["pending"] == 0


@pytest.mark.parametrize("route", PROTECTED, ids=lambda r: r.route_key)
def test_every_protected_route_refuses_a_request_without_a_token(api: ApiClient, route) -> None:
    response = api.http.request(route.method, _concrete(route.path))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_unknown_routes_and_methods_are_json_errors(api: ApiClient) -> None:
    assert api.http.get("/api/nothing-here").json()["error"]["code"] == "not_found"
    wrong = api.http.post("/health")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_a_request_over_the_gateway_limit_is_refused_with_json(api: ApiClient) -> None:
    response = api.http.post("/health", content=b"x" * (10 * 1024 * 1024 + 1))

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_body_over_the_api_limit_is_refused_by_the_lambda(api: ApiClient) -> None:
    response = api.http.request("GET", "/health", content=b"x" * (MAX_BODY_BYTES + 1))

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        pytest.param(b'{"name": "Ana"}', "text/plain;charset=UTF-8", 415, "unsupported_media_type"),
        pytest.param(b'{"name": "\xff"}', "application/octet-stream", 400, "bad_request"),
        pytest.param(b"[" * 5000 + b"]" * 5000, "application/json", 400, "bad_request"),
    ],
    ids=["text-plain", "not-utf8", "nested-too-deep"],
)
def test_a_public_body_the_api_cannot_read_is_a_json_4xx_not_a_500(
    api: ApiClient, content: bytes, content_type: str, status: int, code: str
) -> None:
    # Given anyone, without a token, posting to the public sales-contact route
    # When the body is in another media type, not UTF-8, or nested beyond what Python parses
    response = api.http.post(
        "/api/billing/commercial-requests", content=content, headers={"content-type": content_type}
    )

    # Then it is refused with the platform's JSON error body
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code


def test_swagger_ui_and_the_spec_are_served_at_docs(api: ApiClient) -> None:
    page = api.http.get("/docs")
    spec = api.http.get("/docs/openapi.json")

    assert page.status_code == 200
    assert "swagger-ui" in page.text
    assert spec.json()["paths"]["/health"]["get"]
