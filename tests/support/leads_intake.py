"""A test-only resolver with the leads intake routers (the group's handler.py is built on
another branch and includes the same routers), and helpers to call it as API Gateway would."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from lambdas.leads import routes_forms, routes_imports, routes_outreach
from lambdas.leads.intake_runtime import reset_intake_runtime
from lambdas.shared.http import create_resolver, resolve
from tests.support.events import http_event, lambda_context
from tests.support.factories import TestUser
from tests.support.handlers import HandlerResult

app = create_resolver()
app.include_router(routes_outreach.router)
app.include_router(routes_forms.router)
app.include_router(routes_imports.router)

SENDER = "prospeccao@alquimista.example"
IMPORTS_BUCKET = "alquimista-test-leads-imports"
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


def configure_intake(monkeypatch: pytest.MonkeyPatch) -> None:
    """In moto: the suppression key's secret, a verified SES sender and the imports bucket;
    the intake's settings pointed at them."""
    secret = boto3.client("secretsmanager").create_secret(
        Name=f"leads-suppression-{uuid.uuid4()}",
        SecretString=json.dumps({"hmac_key": SUPPRESSION_KEY}),
    )
    monkeypatch.setenv("LEADS_SUPPRESSION_SECRET_ARN", secret["ARN"])
    monkeypatch.setenv("LEADS_OUTREACH_SENDER", SENDER)
    monkeypatch.setenv("LEADS_IMPORTS_BUCKET", IMPORTS_BUCKET)
    boto3.client("sesv2").create_email_identity(EmailIdentity=SENDER)
    boto3.client("s3").create_bucket(Bucket=IMPORTS_BUCKET)
    reset_intake_runtime()
