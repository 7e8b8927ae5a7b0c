"""The local gateway over HTTP: an ASGI app served by uvicorn's h11 protocol.

uvicorn and h11 own the framing (chunked bodies, ``Content-Length`` that is missing,
negative, non-numeric or longer than what arrives, disconnects, pipelining) and the listen
backlog; this module adds API Gateway's size limits and JSON error bodies, and hands each
request to ``LocalGateway.dispatch`` on a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

import uvicorn
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from lambdas.shared.errors import error_body
from scripts.devstack.gateway import (
    GATEWAY_MAX_BODY,
    GATEWAY_MAX_REQUEST_LINE_AND_HEADERS,
    LISTEN_BACKLOG,
    SERVER_MAX_HEAD,
    GatewayResponse,
    LocalGateway,
    json_error,
)

# Local-only GET pages (the Swagger UI), called with the query string.
ExtraRoutes = dict[str, Callable[[str], GatewayResponse]]
_HOP_BY_HOP: Final = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive"})
_STARTUP_TIMEOUT_S: Final = 30.0


class JsonErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering a request it cannot parse with the platform's JSON
    error body instead of plain text."""

    def send_400_response(self, msg: str) -> None:
        import h11  # noqa: PLC0415

        body = json.dumps(
            error_body(HTTPStatus.BAD_REQUEST, "bad_request", "malformed HTTP request", None)
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


def _head_size(scope: Scope) -> tuple[int, int]:
    """(request target length, request line + header values length) in bytes."""
    target = len(scope.get("raw_path") or scope["path"].encode())
    if scope["query_string"]:
        target += 1 + len(scope["query_string"])
    line = len(scope["method"]) + 1 + target + len(" HTTP/1.1")
    return target, line + sum(len(value) for _, value in scope["headers"])


class GatewayApp:
    """ASGI entry point: limits, body, then the gateway's dispatch."""

    def __init__(self, gateway: LocalGateway, extra_routes: ExtraRoutes | None = None) -> None:
        self.gateway = gateway
        self.extra_routes = extra_routes or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            response = await self._respond(scope, receive)
        except ClientDisconnect:
            return  # the client left before sending its whole body: no one to answer
        await _starlette_response(response)(scope, receive, send)

    async def _respond(self, scope: Scope, receive: Receive) -> GatewayResponse:
        target, head = _head_size(scope)
        if target > GATEWAY_MAX_REQUEST_LINE_AND_HEADERS:
            return json_error(
                HTTPStatus.REQUEST_URI_TOO_LONG,
                "uri_too_long",
                f"request line over {GATEWAY_MAX_REQUEST_LINE_AND_HEADERS} bytes",
                None,
            )
        if head > GATEWAY_MAX_REQUEST_LINE_AND_HEADERS:
            return json_error(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                f"request line and header values over {GATEWAY_MAX_REQUEST_LINE_AND_HEADERS} bytes",
                None,
            )
        request = Request(scope, receive)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > GATEWAY_MAX_BODY:
                response = json_error(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    "payload_too_large",
                    "request too large",
                    None,
                )
                response.headers["connection"] = "close"
                return response
        method = scope["method"]
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope["query_string"].decode("latin-1")
        extra = self.extra_routes.get(scope["path"])
        if extra is not None and method == "GET":
            return await run_in_threadpool(extra, query)
        target_text = f"{raw_path}?{query}" if query else raw_path
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        client = scope.get("client") or ("127.0.0.1", 0)
        return await run_in_threadpool(
            self.gateway.dispatch, method, target_text, headers, bytes(body), source_ip=client[0]
        )


def _starlette_response(response: GatewayResponse) -> Response:
    reply = Response(content=response.body, status_code=response.status)
    for name, value in response.headers.items():
        if name.lower() not in _HOP_BY_HOP:
            reply.headers[name] = value
    if response.headers.get("connection") == "close":
        reply.headers["connection"] = "close"
    for cookie in response.cookies:
        reply.raw_headers.append((b"set-cookie", cookie.encode("latin-1")))
    return reply


class GatewayServer:
    """uvicorn serving the gateway on a background thread."""

    def __init__(
        self,
        gateway: LocalGateway,
        host: str,
        port: int,
        extra_routes: ExtraRoutes | None = None,
    ) -> None:
        self.gateway = gateway
        self.host, self.port = host, port
        config = uvicorn.Config(
            GatewayApp(gateway, extra_routes),
            host=host,
            port=port,
            http=JsonErrorH11Protocol,
            lifespan="off",
            access_log=False,
            log_config=None,
            backlog=LISTEN_BACKLOG,
            h11_max_incomplete_event_size=SERVER_MAX_HEAD,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> GatewayServer:
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the gateway could not listen on {self.host}:{self.port}")
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start in time")
            time.sleep(0.02)
        return self

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.gateway.close()

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
