"""``Idempotency-Key`` for POST routes, on Powertools idempotency with its DynamoDB store.

A replay with the same key (same caller, same route) returns the first response, marked with
``Idempotent-Replayed: true``; the same key with a different body is refused. Server errors and
"not now" errors (``AppError.retry_later``: rate limited, approval pending) are never recorded,
so a retry after them runs again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final
from uuid import UUID

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.shared.auth import Principal, claims_of
from lambdas.shared.constants import TENANT_CLAIM
from lambdas.shared.errors import AppError, Conflict, ValidationFailed, means_retry_later
from lambdas.shared.runtime import get_runtime

HEADER: Final = "idempotency-key"
MAX_KEY_LENGTH: Final = 255
EXPIRES_AFTER_S: Final = 24 * 60 * 60

# A key is scoped to what the request resolved to, never to how it was spelt: the caller (the
# authorized user, or the source IP on public routes), the tenant it acts in, the route and its
# path parameters (UUIDs in canonical form), and the client's key. So a retry that adds
# X-Tenant-Id with the token's own tenant, or spells a UUID in capitals, is a replay, and no
# caller replays a response given to another user or in another tenant.
KEY_EXPRESSION: Final = "scope"
_UUID_SHAPE: Final = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")

Resolve = Callable[..., dict[str, Any]]


class IdempotencyKeyReused(ValidationFailed):
    code = "idempotency_key_reused"


class IdempotentRequestInProgress(Conflict):
    code = "idempotent_request_in_progress"


class _NotRecorded(Exception):
    """A response the key must not keep: raising it out of the idempotent function makes
    Powertools delete the in-progress record instead of saving the response."""

    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__("response not recorded")
        self.response = response


def _recorded(response: dict[str, Any]) -> bool:
    """Whether a key keeps ``response``: not a server error, and not a "not now" error (rate
    limited, approval pending: ``AppError.retry_later``), whose retry with the same key must
    run again, as the error itself tells the client to do."""
    status = int(response["statusCode"])
    if status >= 500:
        return False
    if status < 400:
        return True
    try:
        code = json.loads(response.get("body") or "{}")["error"]["code"]
    except (ValueError, TypeError, KeyError):
        return True
    return not (isinstance(code, str) and means_retry_later(code))


def wants_idempotency(event: dict[str, Any]) -> bool:
    method = event.get("requestContext", {}).get("http", {}).get("method")
    return method == "POST" and bool((event.get("headers") or {}).get(HEADER))


def _mark_replay(response: Any, idempotent_data: DataRecord) -> Any:
    if isinstance(response, dict):
        response.setdefault("headers", {})["Idempotent-Replayed"] = "true"
    return response


@lru_cache(maxsize=4)
def _idempotent_resolver(table_name: str) -> tuple[Resolve, IdempotencyConfig]:
    config = IdempotencyConfig(
        event_key_jmespath=KEY_EXPRESSION,
        payload_validation_jmespath="body",
        expires_after_seconds=EXPIRES_AFTER_S,
        response_hook=_mark_replay,
    )
    # The environment's DynamoDB client: without one, the store builds a boto3 session of its own.
    store = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=get_runtime().dynamodb)

    def run(
        *,
        request: dict[str, Any],
        event: dict[str, Any],
        app: APIGatewayHttpResolver,
        context: LambdaContext,
    ) -> dict[str, Any]:
        response = app.resolve(event, context)
        if not _recorded(response):
            raise _NotRecorded(response)
        return response

    decorated: Resolve = idempotent_function(
        run, data_keyword_argument="request", persistence_store=store, config=config
    )
    return decorated, config


def _canonical(value: str) -> str:
    return str(UUID(value)) if _UUID_SHAPE.fullmatch(value) else value


def idempotency_scope(event: dict[str, Any], principal: Principal | None) -> list[str]:
    """What an ``Idempotency-Key`` is keyed on: resolved caller, tenant, route and key."""
    params = event.get("pathParameters") or {}
    if principal is not None:
        caller, tenant = str(principal.user_id), str(principal.tenant_id)
    else:  # a public route: no tenant; the token's subject if one came, else the address
        claims = claims_of(event) or {}
        caller = str(claims.get("sub") or event["requestContext"]["http"]["sourceIp"])
        tenant = str(claims.get(TENANT_CLAIM) or "")
    return [
        caller,
        tenant,
        str(event.get("routeKey", "")),
        *(f"{name}={_canonical(params[name])}" for name in sorted(params)),
        event["headers"][HEADER],
    ]


def resolve_idempotently(
    app: APIGatewayHttpResolver,
    event: dict[str, Any],
    context: LambdaContext,
    *,
    table_name: str,
) -> dict[str, Any] | AppError:
    """Resolve ``event`` once per idempotency key; an AppError for a refused replay."""
    if len(event["headers"][HEADER]) > MAX_KEY_LENGTH:
        return ValidationFailed(f"Idempotency-Key is longer than {MAX_KEY_LENGTH} characters")
    run, config = _idempotent_resolver(table_name)
    config.register_lambda_context(context)
    principal = app.context.get("principal")
    request = {
        "scope": idempotency_scope(event, principal if isinstance(principal, Principal) else None),
        "body": event.get("body"),
    }
    try:
        return run(request=request, event=event, app=app, context=context)
    except _NotRecorded as failed:
        return failed.response
    except IdempotencyValidationError:
        return IdempotencyKeyReused("this Idempotency-Key was already used with a different body")
    except IdempotencyAlreadyInProgressError:
        return IdempotentRequestInProgress("a request with this Idempotency-Key is in progress")


def forget_stores() -> None:
    """Drop the cached persistence layers (and their DynamoDB clients): the next request builds
    them again from the current environment, as a fresh execution environment would."""
    _idempotent_resolver.cache_clear()
