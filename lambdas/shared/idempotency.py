"""``Idempotency-Key`` for POST routes, on Powertools idempotency with its DynamoDB store.

A replay with the same key (same caller, same route) returns the first response, marked with
``Idempotent-Replayed: true``; the same key with a different body is refused. Server errors are
never recorded, so a retry after a 5xx runs again.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

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

from lambdas.shared.errors import AppError, Conflict, ValidationFailed

HEADER: Final = "idempotency-key"
MAX_KEY_LENGTH: Final = 255
EXPIRES_AFTER_S: Final = 24 * 60 * 60

# Scope a key to the caller (JWT subject, or source IP on public routes), the tenant (the
# header, else the token's claim: what auth.requested_tenant acts in) and the route, so no
# caller replays a response given to another user or in another tenant.
KEY_EXPRESSION: Final = (
    "[requestContext.authorizer.jwt.claims.sub || requestContext.http.sourceIp, "
    'headers."x-tenant-id", requestContext.authorizer.jwt.claims."custom:tenant_id", '
    'routeKey, rawPath, headers."idempotency-key"]'
)

Resolve = Callable[..., dict[str, Any]]


class IdempotencyKeyReused(ValidationFailed):
    code = "idempotency_key_reused"


class IdempotentRequestInProgress(Conflict):
    code = "idempotent_request_in_progress"


class _ServerErrorNotRecorded(Exception):
    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__("server error: not recorded")
        self.response = response


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
    store = DynamoDBPersistenceLayer(table_name=table_name)

    def run(
        *, event: dict[str, Any], app: APIGatewayHttpResolver, context: LambdaContext
    ) -> dict[str, Any]:
        response = app.resolve(event, context)
        if int(response["statusCode"]) >= 500:
            raise _ServerErrorNotRecorded(response)
        return response

    decorated: Resolve = idempotent_function(
        run, data_keyword_argument="event", persistence_store=store, config=config
    )
    return decorated, config


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
    try:
        return run(event=event, app=app, context=context)
    except _ServerErrorNotRecorded as failed:
        return failed.response
    except IdempotencyValidationError:
        return IdempotencyKeyReused("this Idempotency-Key was already used with a different body")
    except IdempotencyAlreadyInProgressError:
        return IdempotentRequestInProgress("a request with this Idempotency-Key is in progress")


class OnceInProgress(Conflict):
    code = "in_progress"


@lru_cache(maxsize=4)
def _once(table_name: str, expires_after_s: int) -> tuple[Resolve, IdempotencyConfig]:
    config = IdempotencyConfig(event_key_jmespath="key", expires_after_seconds=expires_after_s)
    store = DynamoDBPersistenceLayer(table_name=table_name)

    def run_work(*, request: dict[str, str], work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return work()

    decorated: Resolve = idempotent_function(
        run_work, data_keyword_argument="request", persistence_store=store, config=config
    )
    return decorated, config


def run_once(
    table_name: str,
    key: str,
    work: Callable[[], dict[str, Any]],
    *,
    context: LambdaContext | None,
    expires_after_s: int,
) -> dict[str, Any]:
    """Run ``work`` once per ``key`` and replay its result afterwards (Powertools idempotency
    on DynamoDB). A concurrent run with the same key is a Conflict, so the caller retries."""
    run, config = _once(table_name, expires_after_s)
    if context is not None:
        config.register_lambda_context(context)
    try:
        return run(request={"key": key}, work=work)
    except IdempotencyAlreadyInProgressError:
        raise OnceInProgress("this event is being processed; retry shortly") from None


def forget_stores() -> None:
    """Drop the cached persistence layers (and their DynamoDB clients): the next request builds
    them again from the current environment, as a fresh execution environment would."""
    _idempotent_resolver.cache_clear()
    _once.cache_clear()
