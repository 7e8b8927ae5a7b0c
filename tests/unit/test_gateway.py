from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from lambdas.shared.routes import Route
from scripts.devstack.gateway import LocalGateway, to_http
from scripts.devstack.jwt_keys import SigningKey

ROUTES = (
    Route("GET", "/health", "health", public=True),
    Route("GET", "/api/things/{thing_id}", "things"),
    Route("POST", "/api/things", "things"),
    Route("GET", "/api/boom", "boom"),
)


class RecordingHandler:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}


def _crash(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("secret internals")


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def gateway(key: SigningKey, handler: RecordingHandler) -> LocalGateway:
    def load(dotted: str) -> Any:
        return _crash if dotted.startswith("lambdas.boom.") else handler

    return LocalGateway(key, routes=ROUTES, handler_loader=load)


def _bearer(key: SigningKey) -> dict[str, str]:
    return {"Authorization": "Bearer " + key.issue({"sub": "user-1", "email": "a@b.c", "n": 3})}


def _error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response.body)["error"]
    return body


def test_an_unknown_path_is_a_json_404(gateway: LocalGateway) -> None:
    response = gateway.dispatch("GET", "/nowhere", {}, b"")

    assert response.status == 404
    assert _error(response)["code"] == "not_found"
    assert _error(response)["request_id"]


def test_a_known_path_with_the_wrong_method_is_a_json_405(gateway: LocalGateway) -> None:
    response = gateway.dispatch("DELETE", "/api/things", {}, b"")

    assert response.status == 405
    assert response.headers["allow"] == "POST"
    assert _error(response)["code"] == "method_not_allowed"


def test_a_protected_route_without_a_token_is_a_json_401(
    gateway: LocalGateway, handler: RecordingHandler
) -> None:
    response = gateway.dispatch("GET", "/api/things/1", {}, b"")

    assert response.status == 401
    assert _error(response)["code"] == "unauthorized"
    assert handler.events == []


def test_a_forged_token_never_reaches_the_lambda(
    gateway: LocalGateway, handler: RecordingHandler
) -> None:
    forged = _bearer(SigningKey.generate())

    response = gateway.dispatch("GET", "/api/things/1", forged, b"")

    assert response.status == 401
    assert handler.events == []


def test_claims_reach_the_lambda_where_api_gateway_puts_them(
    gateway: LocalGateway, handler: RecordingHandler, key: SigningKey
) -> None:
    response = gateway.dispatch("GET", "/api/things/42?x=1&x=2", _bearer(key), b"")

    assert response.status == 200
    event = handler.events[0]
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert claims["sub"] == "user-1"
    assert claims["n"] == "3"  # API Gateway passes every claim as a string
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /api/things/{thing_id}"
    assert event["pathParameters"] == {"thing_id": "42"}
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["rawQueryString"] == "x=1&x=2"
    assert event["requestContext"]["http"]["method"] == "GET"


def test_public_routes_skip_the_authorizer(
    gateway: LocalGateway, handler: RecordingHandler
) -> None:
    response = gateway.dispatch("GET", "/health", {}, b"")

    assert response.status == 200
    assert "authorizer" not in handler.events[0]["requestContext"]


def test_headers_are_lowercased_and_bodies_pass_through(
    gateway: LocalGateway, handler: RecordingHandler, key: SigningKey
) -> None:
    gateway.dispatch("POST", "/api/things", {**_bearer(key), "X-Tenant-Id": "t1"}, b'{"name": "x"}')

    event = handler.events[0]
    assert event["headers"]["x-tenant-id"] == "t1"
    assert event["body"] == '{"name": "x"}'
    assert event["isBase64Encoded"] is False


def test_binary_bodies_are_base64_encoded(
    gateway: LocalGateway, handler: RecordingHandler, key: SigningKey
) -> None:
    gateway.dispatch("POST", "/api/things", _bearer(key), b"\xff\xfe\x00")

    event = handler.events[0]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe\x00"


def test_a_crashing_lambda_is_a_500_without_a_traceback(gateway: LocalGateway, key) -> None:
    response = gateway.dispatch("GET", "/api/boom", _bearer(key), b"")

    assert response.status == 500
    assert b"secret internals" not in response.body
    assert b"Traceback" not in response.body
    assert _error(response)["code"] == "internal_error"


def test_lambda_results_map_to_http_as_api_gateway_does() -> None:
    response = to_http(
        {
            "statusCode": 201,
            "headers": {"X-A": "1"},
            "multiValueHeaders": {"X-B": ["2", "3"]},
            "cookies": ["a=1"],
            "body": base64.b64encode(b"\x00raw").decode(),
            "isBase64Encoded": True,
        }
    )

    assert response.status == 201
    assert response.headers == {"x-a": "1", "x-b": "2,3"}
    assert response.cookies == ["a=1"]
    assert response.body == b"\x00raw"


def test_a_bare_json_result_is_a_200() -> None:
    response = to_http({"ok": True})

    assert response.status == 200
    assert json.loads(response.body) == {"ok": True}
