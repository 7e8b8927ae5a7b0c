"""The resolver every route-group Lambda uses, and the entry-point plumbing around it."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import psycopg
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIResponseValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.compat import ModelField
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from lambdas.shared.auth import PermissionDenied, Principal
from lambdas.shared.constants import MAX_BODY_BYTES
from lambdas.shared.errors import (
    AppError,
    BadRequest,
    PayloadTooLarge,
    database_unavailable,
    error_body,
    error_headers,
    register_error_handlers,
)
from lambdas.shared.idempotency import resolve_idempotently, wants_idempotency
from lambdas.shared.observability import logger
from lambdas.shared.request_body import parse_json, unsupported_media_type
from lambdas.shared.routes import route_for_key
from lambdas.shared.runtime import get_runtime
from lambdas.shared.scope import RequestScope

SCOPE_KEY = "scope"  # where ``resolve`` puts the request's scope in the resolver's context


def create_resolver() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=parse_json_body)
    app._response_validation_middleware = OneJsonPassResponseValidation(
        has_response_validation_error=app._has_response_validation_error
    )
    register_error_handlers(app)
    return app


class OneJsonPassResponseValidation(OpenAPIResponseValidationMiddleware):
    """Powertools' response validation, writing a route's result as JSON in one pydantic pass.

    Powertools dumps the validated result to Python objects (``mode="json"``), then its
    serializer walks them again with ``json.dumps``; ``dump_json`` writes the same document from
    the model directly. The body is then a ``str``, which the response builder leaves as it is.
    The JSON is the same document; characters beyond ASCII are written as UTF-8 rather than as
    ``\\u`` escapes. A result that fails validation, or that is not a model, dict or list (a
    route's own JSON text), takes Powertools' own path.
    """

    def _serialize_response_with_validation(
        self, *, field: ModelField, response_content: Any, **options: Any
    ) -> Any:
        value, errors = field.validate(value=response_content, loc=("response",))
        if (
            errors
            or any(options.get(name) for name in _SERIALIZATION_OPTIONS)
            # a str (e.g. a body the route wrote as JSON itself) is sent as it is, not encoded
            or not isinstance(value, BaseModel | dict | list)
        ):
            return super()._serialize_response_with_validation(
                field=field, response_content=response_content, **options
            )
        return field._type_adapter.dump_json(value, by_alias=True).decode()


# Options Powertools' own serialization honours; the one-pass path is for their defaults only.
_SERIALIZATION_OPTIONS = ("include", "exclude", "exclude_unset", "exclude_defaults", "exclude_none")


def parse_json_body(body: str) -> Any:
    """The resolver's JSON parser: the body rules of ``request_body`` (400/422 AppErrors)."""
    return parse_json(body)


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
    """Refuse oversized bodies before validation parses them, open the request's scope,
    authorize protected routes from the route table, honour ``Idempotency-Key`` on POST, then
    let the resolver route; the scope ends (its transaction with it) when the request does.

    Authorization comes before validation so that a caller without access learns nothing about
    the shape of a request (401/403 before 422).
    """
    if body_size(event) > MAX_BODY_BYTES:
        return error_response(
            event, PayloadTooLarge(f"request body exceeds {MAX_BODY_BYTES} bytes")
        )
    if (refused := undecodable_body(event) or unsupported_media_type(event)) is not None:
        return error_response(event, refused)
    route = route_for_key(str(event.get("routeKey", "")))
    request = event.get("requestContext") or {}
    runtime = get_runtime()
    # Safe methods never write: their transactions run READ ONLY (PostgreSQL enforces it).
    scope = runtime.request_scope(
        request_id=request.get("requestId"),
        read_only=request.get("http", {}).get("method") in {"GET", "HEAD"},
    )
    app.context[SCOPE_KEY] = scope
    try:
        if route is not None and not route.public:
            # A protected route that names no permission fails closed (403).
            scope.authorize(event, route.permission or "")
        if wants_idempotency(event) and (route is None or route.accepts_idempotency_key):
            table = runtime.api_settings.idempotency_table
            if table:
                result = resolve_idempotently(app, event, context, table_name=table)
                return error_response(event, result) if isinstance(result, AppError) else result
        return app.resolve(event, context)
    except AppError as error:
        if isinstance(error, PermissionDenied) and route is not None:
            _record_denial(scope, error, route.route_key)
        return error_response(event, error)
    except psycopg.OperationalError as error:
        # raised by the authorization lookup, before the resolver's own handlers apply
        return error_response(event, database_unavailable(error))
    finally:
        app.context.clear()
        _end(scope)


def _record_denial(scope: RequestScope, denied: PermissionDenied, route_key: str) -> None:
    """A member refused by their role is audited; the 403 is answered even if that fails."""
    try:
        scope.record_denial(
            tenant_id=denied.tenant_id,
            actor_id=denied.user_id,
            action="access.denied",
            resource_type="route",
            resource_id=route_key,
            details={"permission": denied.permission},
        )
    except psycopg.Error:
        logger.exception("could not audit a denied request")


def _end(scope: RequestScope) -> None:
    try:
        scope.end()
    except psycopg.Error as error:
        # the response is decided; a connection lost at COMMIT of a read is replaced next time
        logger.warning("ending the request's transaction failed", extra={"error": repr(error)})


def current_scope(app: APIGatewayHttpResolver | Router) -> RequestScope:
    """The scope ``resolve`` opened for this invocation."""
    scope = app.context.get(SCOPE_KEY)
    if not isinstance(scope, RequestScope):
        raise RuntimeError("no request scope: the route was not reached through resolve()")
    return scope


def current_principal(app: APIGatewayHttpResolver | Router) -> Principal:
    """The caller ``resolve`` authorized for this invocation (Unauthorized if none)."""
    return current_scope(app).caller
