"""Calling the leads group's resolver (the intake routers are included in
``lambdas/leads/handler.py``) as API Gateway would, with a chosen source IP, and the intake's
moto resources. A router belongs to one resolver: a second, test-only one would steal its
request context from the real handler."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest

from lambdas.leads.handler import app
from lambdas.shared.http import resolve
from lambdas.shared.runtime import reset_runtime
from tests.support.events import http_event, lambda_context
from tests.support.factories import TestUser
from tests.support.handlers import HandlerResult

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
    reset_runtime()
