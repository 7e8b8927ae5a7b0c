from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from lambdas.shared.constants import MAX_BODY_BYTES, SERVICE_NAME
from lambdas.shared.routes import ROUTES
from scripts.devstack.gateway import LocalGateway, PooledFunctions
from scripts.devstack.gateway_server import GatewayServer
from scripts.devstack.identities import find_user
from scripts.devstack.jwt_keys import SigningKey
from tests.api.conftest import TEST_POOL_SIZE, ApiClient

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


@pytest.fixture(scope="module")
def anonymous(gateway_url: str) -> Iterator[httpx.Client]:
    """A client with no token, for what the gateway's authorizer answers before any function
    (and so any database) is reached."""
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("route", PROTECTED, ids=lambda r: r.route_key)
def test_every_protected_route_refuses_a_request_without_a_token(
    anonymous: httpx.Client, route
) -> None:
    response = anonymous.request(route.method, _concrete(route.path))

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
    assert api.http.get("/docs", params={"format": "json"}).json() == spec.json()


def _raw(url: str, request: bytes, *, read_timeout_s: float = 5) -> bytes:
    """Send bytes as they are and read until the server closes or goes quiet."""
    host, port = url.removeprefix("http://").split(":")
    chunks = []
    with socket.create_connection((host, int(port)), timeout=read_timeout_s) as sock:
        try:
            for start in range(0, len(request), 65536):
                sock.sendall(request[start : start + 65536])
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed before reading everything
            pass
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def _status_and_json(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


@pytest.mark.parametrize("method", ["HEAD", "TRACE", "BREW", "OPTIONS"])
def test_methods_no_route_serves_are_a_json_405_naming_the_allowed_ones(
    gateway_url: str, method: str
) -> None:
    response = httpx.request(method, f"{gateway_url}/health")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    if method != "HEAD":  # a HEAD response has no body, by HTTP's rules
        assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("size", [10_300, 70_000])
def test_a_request_target_over_api_gateways_limit_is_a_json_414(
    gateway_url: str, size: int
) -> None:
    raw = _raw(gateway_url, f"GET /api/plans?q={'a' * size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    status, body = _status_and_json(raw)
    assert status == 414
    assert body["error"]["code"] == "uri_too_long"


def test_request_line_and_headers_over_api_gateways_limit_are_a_json_431(gateway_url: str) -> None:
    headers = {f"x-filler-{n}": "v" * 1000 for n in range(11)}

    response = httpx.get(f"{gateway_url}/health", headers=headers)

    assert response.status_code == 431
    assert response.json()["error"]["code"] == "headers_too_large"


def test_a_request_head_past_what_the_server_buffers_is_a_json_400(gateway_url: str) -> None:
    raw = _raw(gateway_url, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_100_000)

    status, body = _status_and_json(raw)
    assert status == 400
    assert body["error"]["code"] == "bad_request"


@pytest.mark.parametrize("length", [b"abc", b"-1", b"1, 2"])
def test_a_malformed_content_length_is_a_json_400_and_nothing_is_parsed_as_a_second_request(
    gateway_url: str, length: bytes
) -> None:
    request = (
        b"POST /api/billing/commercial-requests HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + length
        + b"\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    )

    raw = _raw(gateway_url, request)

    assert raw.count(b"HTTP/1.1 ") == 1
    status, body = _status_and_json(raw)
    assert status == 400
    assert body["error"]["code"] == "bad_request"


def test_a_body_shorter_than_its_content_length_gets_no_answer_and_no_hang(
    gateway_url: str,
) -> None:
    # Given a client that announces 100 bytes, sends 5 and closes its side
    started = time.monotonic()
    raw = _raw(
        gateway_url,
        b"POST /api/billing/commercial-requests HTTP/1.1\r\nHost: x\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":',
    )

    # Then the server drops the request at once: nothing to answer, nothing left waiting
    assert raw == b""
    assert time.monotonic() - started < 4
    assert httpx.get(f"{gateway_url}/api/plans").status_code == 401


def test_a_chunked_body_reaches_the_lambda_whole(api: ApiClient) -> None:
    body = b'{"name": "Ana", "email": "not-an-email"}'

    def chunks() -> Iterator[bytes]:
        yield body[:9]
        yield body[9:]

    headers = {"content-type": "application/json"}
    chunked = api.http.post("/api/billing/commercial-requests", content=chunks(), headers=headers)
    whole = api.http.post("/api/billing/commercial-requests", content=body, headers=headers)

    # the same answer as with Content-Length: the Lambda saw the same body
    assert chunked.status_code == whole.status_code == 422
    assert chunked.json()["error"]["details"] == whole.json()["error"]["details"]


def test_two_authorization_headers_are_refused_not_one_picked(api: ApiClient) -> None:
    user = find_user("acme", "admin")
    good = api.token_for(user)["Authorization"]

    one = api.http.get("/api/plans", headers=[("Authorization", good)])
    two = api.http.get("/api/plans", headers=[("Authorization", good), ("Authorization", good)])

    assert one.status_code == 200
    assert two.status_code == 401
    assert two.json()["error"]["code"] == "unauthorized"


def test_repeated_headers_reach_the_lambda_joined_with_commas() -> None:
    seen: list[dict[str, Any]] = []

    def record(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(event)
        return {"statusCode": 204}

    gateway = LocalGateway(SigningKey.generate(), handler_loader=lambda _: record)

    gateway.dispatch(
        "GET",
        "/health",
        [
            ("X-Forwarded-For", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
        ],
        b"",
    )

    assert seen[0]["headers"]["x-forwarded-for"] == "1.1.1.1,2.2.2.2"
    assert seen[0]["cookies"] == ["a=1", "b=2"]


def test_a_burst_of_parallel_connections_is_served_without_resets(api: ApiClient) -> None:
    # Given 40 clients connecting at once (the old server's backlog was 5)
    def one(_: int) -> int:
        return httpx.get(f"{api.http.base_url}/health", timeout=30).status_code

    with ThreadPoolExecutor(max_workers=40) as pool:
        statuses = list(pool.map(one, range(40)))

    # Then every one is answered
    assert statuses == [200] * 40


def test_each_function_serves_overlapping_requests_from_several_environments(
    api: ApiClient, gateway_server: GatewayServer
) -> None:
    # Given 8 overlapping requests to one function
    def one(_: int) -> int:
        return httpx.get(f"{api.http.base_url}/health", timeout=30).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(one, range(8))) == {200}

    # Then its pool runs more than one execution environment, and never more than its size
    functions = gateway_server.gateway.functions
    assert isinstance(functions, PooledFunctions)
    health = functions.pool("lambdas.health.handler.lambda_handler", "alquimista-dev-health")
    assert 1 < health.started <= functions.size == TEST_POOL_SIZE
