"""Domain errors and their one mapping to HTTP.

Services raise these; ``register_error_handlers`` turns them into JSON error bodies
``{"error": {"code", "message", "request_id"}}``. Nothing else builds an error response.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any, ClassVar

import psycopg
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFound
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from lambdas.shared.observability import logger


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str | None = None
    details: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# Constraint name -> the domain error its violation means (filled by AppError subclasses).
_BY_CONSTRAINT: dict[str, type[AppError]] = {}
# The codes of errors that mean "not now" (``AppError.retry_later``).
_RETRY_LATER_CODES: set[str] = set()


class AppError(Exception):
    """Base of every error a client may see. ``message`` must be safe to show.

    A domain error lists in ``constraints`` the unique or foreign keys whose violation means it:
    a request that loses a race on the index gets the same answer as the service's pre-check
    would have given (``error_for_integrity`` is the one mapping; clients never see a
    constraint's name).
    """

    status: ClassVar[HTTPStatus] = HTTPStatus.INTERNAL_SERVER_ERROR
    code: ClassVar[str] = "internal_error"
    constraints: ClassVar[tuple[str, ...]] = ()
    constraint_message: ClassVar[str] = "the request conflicts with an existing record"
    # "Not now": nothing was done, and the same request may succeed later (rate limited, an
    # approval still pending, a dependency down). An Idempotency-Key does not record such an
    # answer, so the client's retry with the same key runs again instead of replaying it.
    retry_later: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls.__dict__.get("constraints", ()):
            _BY_CONSTRAINT[name] = cls
        if cls.retry_later:
            _RETRY_LATER_CODES.add(cls.code)

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(AppError):
    status = HTTPStatus.BAD_REQUEST
    code = "bad_request"


class Unauthorized(AppError):
    status = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"


class Forbidden(AppError):
    status = HTTPStatus.FORBIDDEN
    code = "forbidden"


class NotFound(AppError):
    status = HTTPStatus.NOT_FOUND
    code = "not_found"


class Conflict(AppError):
    status = HTTPStatus.CONFLICT
    code = "conflict"


class PayloadTooLarge(AppError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"


class UnsupportedMediaType(AppError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_media_type"


class ValidationFailed(AppError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "validation_error"


class TooManyRequests(AppError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    code = "rate_limited"
    retry_later = True
    # Seconds a client should wait, sent as Retry-After; a raise site that knows better
    # passes its own.
    retry_after_s: int = 60

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message, details=details)
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s


class ServiceUnavailable(AppError):
    retry_later = True
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "service_unavailable"


def database_unavailable(error: psycopg.OperationalError) -> ServiceUnavailable:
    """What a client is told when PostgreSQL cannot be reached (the cause is only logged)."""
    logger.warning("database unavailable", extra={"error": type(error).__name__})
    return ServiceUnavailable("the database is unavailable; retry shortly")


def error_for_integrity(error: psycopg.errors.IntegrityError) -> AppError:
    """The domain error a constraint violation means; a generic one for unmapped constraints."""
    constraint = error.diag.constraint_name
    mapped = _BY_CONSTRAINT.get(constraint or "")
    if mapped is not None:
        return mapped(mapped.constraint_message)
    logger.warning("unmapped constraint violation", extra={"constraint": constraint})
    if isinstance(error, psycopg.errors.ForeignKeyViolation):
        return Conflict("the request refers to a record that does not exist or is still in use")
    if isinstance(error, psycopg.errors.UniqueViolation | psycopg.errors.ExclusionViolation):
        return Conflict("the request conflicts with an existing record")
    return ValidationFailed("the request breaks a rule of the data it changes")


def error_body(
    status: HTTPStatus,
    code: str,
    message: str,
    request_id: str | None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    detail = ErrorDetail(code=code, message=message, request_id=request_id, details=details)
    return ErrorBody(error=detail).model_dump(exclude_none=True)


def means_retry_later(code: str) -> bool:
    """Whether an error body's ``code`` is one of a "not now" error (``AppError.retry_later``)."""
    return code in _RETRY_LATER_CODES


def error_headers(error: AppError) -> dict[str, str]:
    """Headers an error response carries besides its content type."""
    if isinstance(error, TooManyRequests):
        return {"Retry-After": str(error.retry_after_s)}
    return {}


def _summary(error: type[AppError]) -> str:
    if error.__doc__ and error.__doc__ is not AppError.__doc__:
        return error.__doc__.strip().splitlines()[0]
    return re.sub(r"(?<!^)(?=[A-Z])", " ", error.__name__).lower()


def error_responses(*errors: type[AppError], success: int = 200) -> dict[int, OpenAPIResponse]:
    """OpenAPI ``responses=`` for a route: its success status (Powertools fills in the return
    type) and the domain errors its use case raises, by status, each with the platform's error
    body (a test checks them against the raise sites)."""
    by_status: dict[int, list[type[AppError]]] = {}
    for error in errors:
        by_status.setdefault(int(error.status), []).append(error)
    documented: dict[int, OpenAPIResponse] = {success: {"description": "Successful Response"}}
    return documented | {
        status: {
            "description": "; ".join(f"`{error.code}`: {_summary(error)}" for error in group),
            "content": {"application/json": {"model": ErrorBody}},
        }
        for status, group in sorted(by_status.items())
    }


def _response(app: APIGatewayHttpResolver, error: AppError) -> Response[Any]:
    request_id = app.current_event.request_context.request_id
    return Response(
        status_code=error.status,
        content_type=content_types.APPLICATION_JSON,
        body=error_body(error.status, error.code, error.message, request_id, error.details),
        headers=error_headers(error) or None,
    )


def _validation_details(errors: Any) -> list[dict[str, Any]]:
    return [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": err.get("msg"),
            "type": err.get("type"),
        }
        for err in errors
    ]


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    """Map every exception a route can raise to one JSON error body."""

    def handle_app_error(error: AppError) -> Response[Any]:
        if error.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            logger.error("request failed", extra={"code": error.code})
        return _response(app, error)

    def handle_validation(error: RequestValidationError) -> Response[Any]:
        errors = error.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            return _response(app, BadRequest("request body is not valid JSON"))
        return _response(
            app, ValidationFailed("request is invalid", details=_validation_details(errors))
        )

    def handle_unsupported_content_type(_: RequestUnsupportedContentType) -> Response[Any]:
        return _response(app, UnsupportedMediaType("send the request body as application/json"))

    def handle_not_found(_: RouteNotFound) -> Response[Any]:
        return _response(app, NotFound("no route matches this request"))

    def handle_integrity(error: psycopg.errors.IntegrityError) -> Response[Any]:
        return _response(app, error_for_integrity(error))

    def handle_data_error(_: psycopg.DataError) -> Response[Any]:
        # A value PostgreSQL cannot store (a NUL byte from a header or path, an out-of-range
        # number) that got past validation: the request's fault, never a 500.
        return _response(app, ValidationFailed("a value in the request cannot be stored"))

    def handle_database_down(error: psycopg.OperationalError) -> Response[Any]:
        return _response(app, database_unavailable(error))

    def handle_unexpected(error: Exception) -> Response[Any]:
        logger.exception("unhandled error")
        return _response(app, AppError("internal error"))

    app.exception_handler(AppError)(handle_app_error)
    app.exception_handler(RequestValidationError)(handle_validation)
    app.exception_handler(RequestUnsupportedContentType)(handle_unsupported_content_type)
    app.not_found(handle_not_found)
    app.exception_handler(psycopg.errors.IntegrityError)(handle_integrity)
    app.exception_handler(psycopg.DataError)(handle_data_error)
    app.exception_handler(psycopg.OperationalError)(handle_database_down)
    app.exception_handler(Exception)(handle_unexpected)
