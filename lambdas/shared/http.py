"""The resolver every route-group Lambda uses, and the entry-point plumbing around it."""

from __future__ import annotations

import base64
import binascii
import json
from functools import lru_cache
from typing import Any
from uuid import UUID

import psycopg
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.shared.auth import Principal, authorize
from lambdas.shared.auth_repository import AuthUnitOfWork
from lambdas.shared.constants import MAX_BODY_BYTES
from lambdas.shared.db import READ_ONLY_REQUEST, Database
from lambdas.shared.errors import (
    AppError,
    BadRequest,
    PayloadTooLarge,
    Unauthorized,
    database_unavailable,
    error_body,
    error_headers,
    register_error_handlers,
)
from lambdas.shared.idempotency import resolve_idempotently, wants_idempotency
from lambdas.shared.routes import route_for_key
from lambdas.shared.secrets import DbCredentials, get_db_credentials
from lambdas.shared.settings import get_api_settings


def create_resolver() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=parse_json_body)
    register_error_handlers(app)
    return app


def parse_json_body(body: str) -> Any:
    """``json.loads`` for request bodies: JSON nested deeper than the interpreter can recurse
    is invalid JSON (a 400 through the resolver's validation), not a crash."""
    try:
        return json.loads(body)
    except RecursionError as error:
        raise json.JSONDecodeError("JSON nested too deeply", body, 0) from error


def body_size(event: dict[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4
    return len(body.encode())


def undecodable_body(event: dict[str, Any]) -> BadRequest | None:
    """API Gateway base64-encodes a body it does not take for text; every route reads UTF-8."""
    body = event.get("body")
    if not body or not event.get("isBase64Encoded"):
        return None
    try:
        base64.b64decode(body).decode()
    except (binascii.Error, UnicodeDecodeError):
        return BadRequest("request body is not valid UTF-8")
    return None


def error_response(event: dict[str, Any], error: AppError) -> dict[str, Any]:
    """A payload v2.0 result for an error raised before the resolver routes the request."""
    request_id = event.get("requestContext", {}).get("requestId")
    return {
        "statusCode": int(error.status),
        "headers": {"Content-Type": "application/json", **error_headers(error)},
        "body": json.dumps(error_body(error.status, error.code, error.message, request_id)),
        "isBase64Encoded": False,
    }


def resolve(
    app: APIGatewayHttpResolver, event: dict[str, Any], context: LambdaContext
) -> dict[str, Any]:
    """Refuse oversized bodies before validation parses them, authorize protected routes from
    the route table, honour ``Idempotency-Key`` on POST, then let the resolver route.

    Authorization comes before validation so that a caller without access learns nothing about
    the shape of a request (401/403 before 422).
    """
    if body_size(event) > MAX_BODY_BYTES:
        return error_response(
            event, PayloadTooLarge(f"request body exceeds {MAX_BODY_BYTES} bytes")
        )
    if (undecodable := undecodable_body(event)) is not None:
        return error_response(event, undecodable)
    route = route_for_key(str(event.get("routeKey", "")))
    # Safe methods never write: their transactions run READ ONLY (PostgreSQL enforces it).
    method = (event.get("requestContext") or {}).get("http", {}).get("method")
    read_only = READ_ONLY_REQUEST.set(method in {"GET", "HEAD"})
    try:
        if route is not None and not route.public:
            # A protected route that names no permission fails closed (403).
            principal = authorize(event, route.permission or "", _auth_unit_of_work)
            app.context["principal"] = principal
        if wants_idempotency(event) and (route is None or route.accepts_idempotency_key):
            table = get_api_settings().idempotency_table
            if table:
                result = resolve_idempotently(app, event, context, table_name=table)
                return error_response(event, result) if isinstance(result, AppError) else result
        return app.resolve(event, context)
    except AppError as error:
        return error_response(event, error)
    except psycopg.OperationalError as error:
        # raised by the authorization lookup, before the resolver's own handlers apply
        return error_response(event, database_unavailable(error))
    finally:
        app.context.clear()
        if get_database.cache_info().currsize:
            get_database().release()
        READ_ONLY_REQUEST.reset(read_only)


def _auth_unit_of_work(sub: UUID, tenant_id: UUID) -> AuthUnitOfWork:
    # The lookup's transaction carries on into the route's unit of work for the same tenant:
    # one transaction per request instead of two.
    return AuthUnitOfWork(get_database(), tenant_id, sub, hand_over=True)


def current_principal(app: APIGatewayHttpResolver | Router) -> Principal:
    """The caller ``resolve`` authorized for this invocation."""
    principal = app.context.get("principal")
    if not isinstance(principal, Principal):
        raise Unauthorized("missing or invalid token")
    return principal


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
