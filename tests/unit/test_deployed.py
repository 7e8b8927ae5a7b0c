"""Invoking a deployed function: the exact request, and how replies and failures come back
(botocore's Stubber checks the call; no network)."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from scripts.devstack.deployed import invoke_once


class StubbedSession:
    """A boto3 session whose Lambda client is stubbed (the real client, no network)."""

    def __init__(self) -> None:
        self.client_config: Any = None
        self.lambda_client = boto3.client(
            "lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        self.stubber = Stubber(self.lambda_client)

    def client(self, name: str, config: Any = None) -> Any:
        assert name == "lambda"
        self.client_config = config
        return self.lambda_client


def _reply(payload: Any, *, function_error: str | None = None) -> dict[str, Any]:
    raw = json.dumps(payload).encode()
    reply: dict[str, Any] = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(raw), len(raw))}
    if function_error:
        reply["FunctionError"] = function_error
    return reply


@pytest.fixture
def session() -> StubbedSession:
    return StubbedSession()


def test_a_synchronous_invocation_with_the_json_payload_and_no_retries(session) -> None:
    session.stubber.add_response(
        "invoke",
        _reply({"action": "status", "ok": True}),
        {
            "FunctionName": "alquimista-dev-migrations",
            "InvocationType": "RequestResponse",
            "Payload": json.dumps({"action": "status"}).encode(),
        },
    )

    with session.stubber:
        reply = invoke_once(
            session, "alquimista-dev-migrations", {"action": "status"}, read_timeout_s=900
        )

    assert reply == {"action": "status", "ok": True}
    assert session.client_config.read_timeout == 900
    assert session.client_config.retries == {"total_max_attempts": 1, "mode": "standard"}


def test_a_function_error_comes_back_as_a_failed_report(session) -> None:
    session.stubber.add_response(
        "invoke",
        _reply({"errorMessage": "Task timed out after 900.00 seconds"}, function_error="Unhandled"),
    )

    with session.stubber:
        reply = invoke_once(session, "fn", {"action": "apply"}, read_timeout_s=900)

    assert reply == {"ok": False, "error": "Task timed out after 900.00 seconds"}
