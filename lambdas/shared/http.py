"""The resolver every route-group Lambda uses, and the entry-point plumbing around it."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.shared.constants import MAX_BODY_BYTES
from lambdas.shared.db import Database
from lambdas.shared.errors import AppError, PayloadTooLarge, error_body, register_error_handlers
from lambdas.shared.idempotency import resolve_idempotently, wants_idempotency
from lambdas.shared.secrets import DbCredentials, get_db_credentials
from lambdas.shared.settings import get_api_settings


def create_resolver() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    register_error_handlers(app)
    return app


def body_size(event: dict[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4
    return len(body.encode())


def error_response(event: dict[str, Any], error: AppError) -> dict[str, Any]:
    """A payload v2.0 result for an error raised before the resolver routes the request."""
    request_id = event.get("requestContext", {}).get("requestId")
    return {
        "statusCode": int(error.status),
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(error_body(error.status, error.code, error.message, request_id)),
        "isBase64Encoded": False,
    }


def resolve(
    app: APIGatewayHttpResolver, event: dict[str, Any], context: LambdaContext
) -> dict[str, Any]:
    """Refuse oversized bodies before validation parses them, honour ``Idempotency-Key`` on
    POST, then let the resolver route."""
    if body_size(event) > MAX_BODY_BYTES:
        return error_response(
            event, PayloadTooLarge(f"request body exceeds {MAX_BODY_BYTES} bytes")
        )
    if wants_idempotency(event):
        table = get_api_settings().idempotency_table
        if table:
            result = resolve_idempotently(app, event, context, table_name=table)
            return error_response(event, result) if isinstance(result, AppError) else result
    return app.resolve(event, context)


@lru_cache(maxsize=1)
def get_database() -> Database:
    """The execution environment's database handle (the connection itself opens on first use)."""
    settings = get_api_settings()

    def credentials(force: bool) -> DbCredentials:
        return get_db_credentials(
            settings.db_secret_id, max_age=settings.db_secret_max_age_s, force=force
        )

    return Database(
        credentials,
        connect_timeout_s=settings.db_connect_timeout_s,
        application_name=settings.db_application_name,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
