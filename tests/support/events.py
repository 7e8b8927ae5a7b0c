"""API Gateway HTTP API (payload v2.0) events for handler tests, built by the local gateway's
own event builder so tests and ``make dev`` feed handlers the same shape."""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.shared.routes import Route, match
from scripts.devstack.gateway import LambdaContextStub, build_event


def _route_for(method: str, path: str) -> tuple[Route, dict[str, str]]:
    found = match(method, path)
    if found is not None and found.route is not None:
        return found.route, found.params
    return Route(method, path, "unrouted"), {}  # type: ignore[arg-type]


def http_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: bytes | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
    claims: dict[str, str] | None = None,
) -> dict[str, Any]:
    route, params = _route_for(method, path)
    payload = (
        raw_body if raw_body is not None else (b"" if body is None else json.dumps(body).encode())
    )
    all_headers = {"content-type": "application/json", **(headers or {})}
    return build_event(
        route=route,
        method=method,
        url_path=path,
        query=query,
        headers={k.lower(): v for k, v in all_headers.items()},
        body=payload,
        path_params=params,
        claims=claims,
        request_id=str(uuid.uuid4()),
        source_ip="203.0.113.10",
    )


def lambda_context(group: str) -> LambdaContext:
    return cast("LambdaContext", LambdaContextStub(function_name=f"alquimista-test-{group}"))
