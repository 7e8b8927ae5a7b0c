"""Invoke a route group's ``lambda_handler`` with a real payload v2.0 event, as a user."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from typing import Any

from lambdas.shared.routes import match
from tests.support.events import http_event, lambda_context
from tests.support.factories import TestUser


@dataclass(frozen=True)
class HandlerResult:
    status: int
    body: Any
    headers: dict[str, str]


def _group_of(method: str, path: str) -> str:
    found = match(method, path)
    if found is not None and found.route is not None:
        return found.route.group
    raise LookupError(f"no route in the table for {method} {path}")


def call(
    method: str,
    path: str,
    *,
    user: TestUser | None = None,
    body: Any = None,
    raw_body: bytes | None = None,
    headers: dict[str, str] | None = None,
    query: str = "",
    claims: dict[str, str] | None = None,
) -> HandlerResult:
    group = _group_of(method, path)
    handler = importlib.import_module(f"lambdas.{group}.handler").lambda_handler
    event = http_event(
        method,
        path,
        body=body,
        raw_body=raw_body,
        headers=headers,
        query=query,
        claims=claims if claims is not None else (user.claims() if user else None),
    )
    result = handler(event, lambda_context(group))
    text = result.get("body") or ""
    return HandlerResult(
        status=int(result["statusCode"]),
        body=json.loads(text) if text else None,
        headers=result.get("headers") or {},
    )
