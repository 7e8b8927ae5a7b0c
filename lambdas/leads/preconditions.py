"""ETag and If-Match for versioned resources (pure): the ETag is the row's version, an update
names the version it read, a stale one is 412 with the current version, a missing one 428."""

from __future__ import annotations

from http import HTTPStatus
from typing import ClassVar

from lambdas.shared.errors import AppError, BadRequest


class PreconditionRequired(AppError):
    status: ClassVar[HTTPStatus] = HTTPStatus.PRECONDITION_REQUIRED
    code: ClassVar[str] = "precondition_required"


class PreconditionFailed(AppError):
    """The client's version is stale; ``current_version`` is the server's."""

    status: ClassVar[HTTPStatus] = HTTPStatus.PRECONDITION_FAILED
    code: ClassVar[str] = "precondition_failed"

    def __init__(self, current_version: int) -> None:
        super().__init__(
            "the resource changed since it was read",
            details=[{"current_version": current_version}],
        )
        self.current_version = current_version


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(if_match: str | None) -> int:
    """The version an If-Match header names: 428 when absent, 400 when it names no version
    (a list or ``*`` is refused: an offline client always knows what it read)."""
    if if_match is None or not if_match.strip():
        raise PreconditionRequired("this update needs an If-Match header with the ETag read")
    value = if_match.strip()
    if value.startswith("W/"):
        value = value[2:]
    if len(value) < 3 or value[0] != '"' or value[-1] != '"' or not value[1:-1].isdigit():
        raise BadRequest("If-Match must be one ETag returned by this API")
    version = int(value[1:-1])
    if version < 1:
        raise BadRequest("If-Match must be one ETag returned by this API")
    return version
