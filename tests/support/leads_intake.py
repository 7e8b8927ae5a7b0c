"""A test-only resolver with the leads intake routers (the group's handler.py is built on
another branch and includes the same routers), and helpers to call it as API Gateway would."""

from __future__ import annotations

import json
from typing import Any

from lambdas.leads import routes_outreach
from lambdas.shared.http import create_resolver, resolve
from tests.support.events import http_event, lambda_context
from tests.support.factories import TestUser
from tests.support.handlers import HandlerResult

app = create_resolver()
app.include_router(routes_outreach.router)

SENDER = "prospeccao@alquimista.example"
SUPPRESSION_KEY = "intake-test-suppression-key-0123456789abcdef"


def call(
    method: str,
    path: str,
    *,
    user: TestUser | None = None,
    body: Any = None,
    raw_body: bytes | None = None,
    headers: dict[str, str] | None = None,
    source_ip: str | None = None,
) -> HandlerResult:
    event = http_event(
        method,
        path,
        body=body,
        raw_body=raw_body,
        headers=headers,
        claims=user.claims() if user else None,
    )
    if source_ip is not None:
        event["requestContext"]["http"]["sourceIp"] = source_ip
    result = resolve(app, event, lambda_context("leads"))
    text = result.get("body") or ""
    return HandlerResult(
        status=int(result["statusCode"]),
        body=json.loads(text) if text else None,
        headers=result.get("headers") or {},
    )
