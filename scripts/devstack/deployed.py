"""Talking to a deployed environment: stack outputs and direct Lambda invocations."""

from __future__ import annotations

import json
from typing import Any


class DeployedLookupError(LookupError):
    """The deployed stacks do not offer what the command needs."""


def find_stack_output(cloudformation: Any, env: str, key: str) -> str:
    """The value of output ``key`` of a stack named ``Alquimista-<env>-*``."""
    prefix = f"Alquimista-{env}-"
    for page in cloudformation.get_paginator("describe_stacks").paginate():
        for stack in page["Stacks"]:
            if not stack["StackName"].startswith(prefix):
                continue
            for output in stack.get("Outputs", []):
                if output["OutputKey"] == key:
                    return str(output["OutputValue"])
    raise DeployedLookupError(f"no stack named {prefix}* exports {key}; deploy the stacks first")


def invoke_once(
    session: Any, function_name: str, payload: dict[str, Any], *, read_timeout_s: int
) -> Any:
    """Invoke synchronously with no client retries (a slow run must never be sent twice).

    Returns the decoded reply, or ``{"ok": False, "error": ...}`` when the function failed.
    """
    from botocore.config import Config  # noqa: PLC0415

    client = session.client(
        "lambda",
        config=Config(
            read_timeout=read_timeout_s,
            connect_timeout=10,
            retries={"total_max_attempts": 1, "mode": "standard"},
        ),
    )
    response = client.invoke(
        FunctionName=function_name,
        InvocationType="RequestResponse",
        Payload=json.dumps(payload).encode(),
    )
    body = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        message = (
            body.get("errorMessage", "the function failed") if isinstance(body, dict) else body
        )
        return {"ok": False, "error": str(message)}
    return body
