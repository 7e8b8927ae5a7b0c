"""A local API Gateway HTTP API: turns HTTP requests into payload v2.0 events and calls the
same ``lambda_handler`` functions that the stacks deploy, chosen from the shared route table.

Served by uvicorn (h11), which owns HTTP framing: chunked bodies, bad or missing
``Content-Length``, short bodies and disconnects never reach the gateway's logic. On top of
it the gateway keeps API Gateway's manners, each answered with the platform's JSON error body:

- request line + header values over 10,240 bytes (HTTP API's quota): 414 if the request
  target alone is over, else 431; a body over 10 MB: 413; a malformed request: 400;
- no route for the path: 404; the path exists but not for this method (HEAD, TRACE, any
  unknown method included): 405 with ``Allow``;
- repeated headers are joined with commas, as API Gateway does (cookies with ``; ``). Two
  ``Authorization`` headers are refused with 401 on protected routes instead of choosing one:
  a JWT never holds a comma, so API Gateway's authorizer fails on the joined value too;
- the JWT authorizer is emulated (claims at ``requestContext.authorizer.jwt.claims``,
  stringified as API Gateway does); why a token was refused is logged at info.

Each route group's Lambda runs in a pool of execution environments (separate processes,
``scripts/devstack/lambda_pool.py``), so requests overlap as they do on AWS.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from lambdas.shared.errors import error_body
from lambdas.shared.routes import ROUTES, Route, match
from scripts.devstack.context import LAMBDA_TIMEOUT_MS, LambdaContextStub
from scripts.devstack.jwt_keys import InvalidToken, SigningKey
from scripts.devstack.lambda_pool import (
    DEFAULT_POOL_SIZE,
    FunctionPool,
    Handler,
    InvocationFailed,
)

__all__ = [
    "GATEWAY_MAX_BODY",
    "LAMBDA_TIMEOUT_MS",
    "GatewayResponse",
    "LambdaContextStub",
    "LocalGateway",
    "build_event",
    "to_http",
]

# API Gateway HTTP APIs accept payloads up to 10 MB; the Lambdas enforce the API's own 1 MiB.
GATEWAY_MAX_BODY: Final = 10 * 1024 * 1024
# HTTP API quota: "total combined size of request line and header values", not adjustable.
GATEWAY_MAX_REQUEST_LINE_AND_HEADERS: Final = 10_240
# What h11 buffers before it gives up on a request head; past it the request is a JSON 400.
SERVER_MAX_HEAD: Final = 1024 * 1024
LISTEN_BACKLOG: Final = 2048

log = logging.getLogger("gateway")

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass
class GatewayResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str] = field(default_factory=list)


def _stringify_claim(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(str(item) for item in value) + "]"
    return str(value)


def json_error(
    status: HTTPStatus, code: str, message: str, request_id: str | None
) -> GatewayResponse:
    body = json.dumps(error_body(status, code, message, request_id)).encode()
    return GatewayResponse(int(status), {"content-type": "application/json"}, body)


_json_error = json_error


class InProcessFunctions:
    """Handlers called in this process (unit tests of the gateway's own logic)."""

    def __init__(self, loader: Callable[[str], Handler]) -> None:
        self._load = loader
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()

    def invoke(self, route: Route, function_name: str, event: dict[str, Any]) -> dict[str, Any]:
        if route.handler not in self._handlers:
            self._handlers[route.handler] = self._load(route.handler)
        context = LambdaContextStub(function_name=function_name)
        with self._lock:
            try:
                return self._handlers[route.handler](event, context)
            except Exception as exc:
                raise InvocationFailed(f"unhandled {type(exc).__name__}") from exc

    def redeploy(self, environment: Mapping[str, str]) -> None:
        return

    def close(self) -> None:
        return


class PooledFunctions:
    """One pool of execution environments per Lambda function (route group)."""

    def __init__(self, *, size: int, environment: Mapping[str, str]) -> None:
        self.size = size
        self._environment = dict(environment)
        self._pools: dict[str, FunctionPool] = {}
        self._lock = threading.Lock()

    def pool(self, handler_path: str, function_name: str) -> FunctionPool:
        with self._lock:
            if handler_path not in self._pools:
                self._pools[handler_path] = FunctionPool(
                    handler_path, function_name, environment=self._environment, size=self.size
                )
            return self._pools[handler_path]

    def invoke(self, route: Route, function_name: str, event: dict[str, Any]) -> dict[str, Any]:
        return self.pool(route.handler, function_name).invoke(event)

    def redeploy(self, environment: Mapping[str, str]) -> None:
        with self._lock:
            self._environment = dict(environment)
            pools = list(self._pools.values())
        for pool in pools:
            pool.redeploy(environment)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


class LocalGateway:
    def __init__(
        self,
        signing_key: SigningKey,
        *,
        routes: Iterable[Route] = ROUTES,
        env: str = "dev",
        handler_loader: Callable[[str], Handler] | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        """``environment``: the Lambdas' variables (default: this process's). With
        ``handler_loader`` the handlers run in this process instead of in pools."""
        import os  # noqa: PLC0415

        self._routes = tuple(routes)
        self._key = signing_key
        self._env = env
        self.functions: InProcessFunctions | PooledFunctions = (
            InProcessFunctions(handler_loader)
            if handler_loader is not None
            else PooledFunctions(
                size=pool_size, environment=dict(os.environ if environment is None else environment)
            )
        )

    def function_name(self, group: str) -> str:
        return f"alquimista-{self._env}-{group}"

    def redeploy(self, environment: Mapping[str, str]) -> None:
        """New configuration for every function (as an update-function-configuration)."""
        self.functions.redeploy(environment)

    def close(self) -> None:
        self.functions.close()

    def dispatch(
        self,
        method: str,
        target: str,
        headers: Headers,
        body: bytes,
        *,
        source_ip: str = "127.0.0.1",
    ) -> GatewayResponse:
        request_id = str(uuid.uuid4())
        url = urlsplit(target)
        path = url.path or "/"
        found = match(method, path, self._routes)
        if found is None:
            return json_error(HTTPStatus.NOT_FOUND, "not_found", f"no route for {path}", request_id)
        if found.route is None:
            allowed = ", ".join(found.allowed)
            response = json_error(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                f"{method.upper()} is not allowed on {path}; allowed: {allowed}",
                request_id,
            )
            response.headers["allow"] = allowed
            return response
        route, params = found.route, found.params
        if len(body) > GATEWAY_MAX_BODY:
            return json_error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "payload_too_large",
                "request too large",
                request_id,
            )
        lowered, authorizations = _lower_headers(headers)
        claims: dict[str, str] | None = None
        if not route.public:
            try:
                if authorizations > 1:
                    raise InvalidToken("more than one Authorization header")
                claims = self._authorize(lowered.get("authorization", ""))
            except InvalidToken as exc:
                log.info("token refused on %s %s: %s", route.method, path, exc)
                return json_error(
                    HTTPStatus.UNAUTHORIZED, "unauthorized", "missing or invalid token", request_id
                )
        event = build_event(
            route=route,
            method=method.upper(),
            url_path=path,
            query=url.query,
            headers=lowered,
            body=body,
            path_params=params,
            claims=claims,
            request_id=request_id,
            source_ip=source_ip,
        )
        return self._invoke(route, event, request_id)

    def _authorize(self, header: str) -> dict[str, str]:
        token = header.removeprefix("Bearer ").strip()
        if not token:
            raise InvalidToken("no token")
        claims = self._key.verify(token)
        return {name: _stringify_claim(value) for name, value in claims.items()}

    def _invoke(self, route: Route, event: dict[str, Any], request_id: str) -> GatewayResponse:
        try:
            result = self.functions.invoke(route, self.function_name(route.group), event)
        except InvocationFailed as failure:  # a crashed Lambda is a 500, never a traceback
            log.warning("%s failed: %s", self.function_name(route.group), failure.reason)
            if failure.reason == "timeout":
                return json_error(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "the integration timed out",
                    request_id,
                )
            return json_error(
                HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error", request_id
            )
        return to_http(result)


def _lower_headers(headers: Headers) -> tuple[dict[str, str], int]:
    """Headers as API Gateway passes them (lower-case names, repeats joined) and how many
    Authorization headers came."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    merged: dict[str, str] = {}
    authorizations = 0
    for name, value in pairs:
        key = name.lower()
        authorizations += key == "authorization"
        separator = "; " if key == "cookie" else ","
        merged[key] = f"{merged[key]}{separator}{value}" if key in merged else value
    return merged, authorizations


def build_event(
    *,
    route: Route,
    method: str,
    url_path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    path_params: dict[str, str],
    claims: dict[str, str] | None,
    request_id: str,
    source_ip: str,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload v2.0 event, as the service would build it."""
    now = datetime.now(UTC)
    query_params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        query_params[name] = f"{query_params[name]},{value}" if name in query_params else value
    cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
    try:
        text_body: str | None = body.decode("utf-8") if body else None
        is_base64 = False
    except UnicodeDecodeError:
        text_body = base64.b64encode(body).decode()
        is_base64 = True
    context: dict[str, Any] = {
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": headers.get("host", "127.0.0.1"),
        "domainPrefix": headers.get("host", "127.0.0.1").split(".")[0],
        "http": {
            "method": method,
            "path": url_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.route_key,
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": url_path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": is_base64,
    }
    if cookies:
        event["cookies"] = cookies
    if query_params:
        event["queryStringParameters"] = query_params
    if path_params:
        event["pathParameters"] = path_params
    if text_body is not None:
        event["body"] = text_body
    return event


def to_http(result: dict[str, Any]) -> GatewayResponse:
    """Map a payload v2.0 Lambda result to an HTTP response, as API Gateway does."""
    if "statusCode" not in result:
        # v2.0 lets a Lambda return a bare JSON value; API Gateway sends it as a 200.
        return GatewayResponse(
            200, {"content-type": "application/json"}, json.dumps(result).encode()
        )
    headers = {name.lower(): str(value) for name, value in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ",".join(str(v) for v in values)
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    return GatewayResponse(
        int(result["statusCode"]), headers, body, list(result.get("cookies") or [])
    )
