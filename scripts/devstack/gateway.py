"""A local API Gateway HTTP API: turns HTTP requests into payload v2.0 events and calls the
same ``lambda_handler`` functions that the stacks deploy, chosen from the shared route table.

It emulates the JWT authorizer (claims at ``requestContext.authorizer.jwt.claims``, stringified
as API Gateway does) and runs one invocation at a time, as one Lambda execution environment
would.
"""

from __future__ import annotations

import base64
import importlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from lambdas.shared.errors import error_body
from lambdas.shared.routes import ROUTES, Route
from scripts.devstack.jwt_keys import InvalidToken, SigningKey

# API Gateway HTTP APIs accept payloads up to 10 MB; the Lambdas enforce the API's own 1 MiB.
GATEWAY_MAX_BODY = 10 * 1024 * 1024
LAMBDA_TIMEOUT_MS = 29_000

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass
class GatewayResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str] = field(default_factory=list)


@dataclass
class LambdaContextStub:
    """What a Lambda handler reads from its context object."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    deadline_ms: float = field(default_factory=lambda: time.time() * 1000 + LAMBDA_TIMEOUT_MS)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.deadline_ms - time.time() * 1000))


def _stringify_claim(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(str(item) for item in value) + "]"
    return str(value)


def _json_error(status: HTTPStatus, code: str, message: str, request_id: str) -> GatewayResponse:
    body = json.dumps(error_body(status, code, message, request_id)).encode()
    return GatewayResponse(int(status), {"content-type": "application/json"}, body)


class LocalGateway:
    def __init__(
        self,
        signing_key: SigningKey,
        *,
        routes: Iterable[Route] = ROUTES,
        env: str = "dev",
        handler_loader: Callable[[str], Handler] | None = None,
    ) -> None:
        self._routes = tuple(routes)
        self._key = signing_key
        self._env = env
        self._load = handler_loader or _import_handler
        self._handlers: dict[str, Handler] = {}
        # Every handler module of this process shares lambdas.shared's cached settings and
        # database connection, which on AWS each function has to itself: so invocations run
        # one at a time, as in a single execution environment.
        self.invocation_lock = threading.Lock()

    def dispatch(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        source_ip: str = "127.0.0.1",
    ) -> GatewayResponse:
        request_id = str(uuid.uuid4())
        url = urlsplit(target)
        path = url.path or "/"
        candidates = [(r, p) for r in self._routes if (p := r.match(path)) is not None]
        if not candidates:
            return _json_error(
                HTTPStatus.NOT_FOUND, "not_found", f"no route for {path}", request_id
            )
        chosen = next(((r, p) for r, p in candidates if r.method == method.upper()), None)
        if chosen is None:
            allowed = ", ".join(sorted({r.method for r, _ in candidates}))
            response = _json_error(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                f"{method.upper()} is not allowed on {path}; allowed: {allowed}",
                request_id,
            )
            response.headers["allow"] = allowed
            return response
        route, params = chosen
        if len(body) > GATEWAY_MAX_BODY:
            return _json_error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "payload_too_large",
                "request too large",
                request_id,
            )
        lowered = _lower_headers(headers)
        claims: dict[str, str] | None = None
        if not route.public:
            try:
                claims = self._authorize(lowered.get("authorization", ""))
            except InvalidToken:
                return _json_error(
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
        handler = self._handler(route.handler)
        context = LambdaContextStub(function_name=f"alquimista-{self._env}-{route.group}")
        with self.invocation_lock:
            try:
                result = handler(event, context)
            except Exception:  # a crashed Lambda is a 500, never a traceback
                return _json_error(
                    HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error", request_id
                )
        return to_http(result)

    def _handler(self, dotted: str) -> Handler:
        if dotted not in self._handlers:
            self._handlers[dotted] = self._load(dotted)
        return self._handlers[dotted]


def _import_handler(dotted: str) -> Handler:
    module_name, _, attr = dotted.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module_name), attr)
    return handler


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    return merged


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


class _RequestHandler(BaseHTTPRequestHandler):
    gateway: LocalGateway
    extra_routes: dict[str, Callable[[], GatewayResponse]]
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > GATEWAY_MAX_BODY:
            response = _json_error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "payload_too_large",
                "request too large",
                str(uuid.uuid4()),
            )
            self.close_connection = True
        else:
            body = self.rfile.read(length) if length else b""
            extra = self.extra_routes.get(urlsplit(self.path).path)
            if extra is not None and self.command == "GET":
                response = extra()
            else:
                response = self.gateway.dispatch(
                    self.command,
                    self.path,
                    dict(self.headers.items()),
                    body,
                    source_ip=self.client_address[0],
                )
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name not in {"content-length", "connection", "transfer-encoding"}:
                self.send_header(name, value)
        for cookie in response.cookies:
            self.send_header("set-cookie", cookie)
        self.send_header("content-length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        return


def make_server(
    gateway: LocalGateway,
    host: str,
    port: int,
    extra_routes: dict[str, Callable[[], GatewayResponse]] | None = None,
) -> ThreadingHTTPServer:
    handler = type(
        "GatewayRequestHandler",
        (_RequestHandler,),
        {"gateway": gateway, "extra_routes": extra_routes or {}},
    )
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
