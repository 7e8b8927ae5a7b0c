"""The shared resolver turns every failure into one JSON error body, never a traceback."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel, ConfigDict

from lambdas.shared.constants import MAX_BODY_BYTES
from lambdas.shared.errors import Conflict, NotFound, error_for_integrity
from lambdas.shared.http import body_size, create_resolver, resolve
from lambdas.shared.request_body import MAX_JSON_DEPTH, parse_json
from tests.support.events import http_event, lambda_context

app = create_resolver()


class CreateThing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    count: int


@app.post("/things")
def create_thing(thing: CreateThing) -> dict[str, Any]:
    return {"name": thing.name}


@app.get("/things/missing")
def missing() -> dict[str, Any]:
    raise NotFound("thing 7 does not exist")


@app.get("/things/taken")
def taken() -> dict[str, Any]:
    raise Conflict("name already taken")


@app.get("/things/crash")
def crash() -> dict[str, Any]:
    raise RuntimeError("connection string with password=hunter2")


@app.get("/things/duplicate")
def duplicate() -> dict[str, Any]:
    raise psycopg.errors.UniqueViolation("duplicate key value violates unique constraint")


@app.get("/things/db-down")
def db_down() -> dict[str, Any]:
    raise psycopg.OperationalError("server closed the connection unexpectedly")


def _call(method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    event = http_event(method, path, **kwargs)
    response = resolve(app, event, lambda_context("test"))
    return response["statusCode"], json.loads(response["body"])


def test_a_valid_body_reaches_the_route() -> None:
    status, body = _call("POST", "/things", body={"name": "a", "count": 1})

    assert status == 200
    assert body == {"name": "a"}


def test_malformed_json_is_a_400() -> None:
    status, body = _call("POST", "/things", raw_body=b'{"name": ')

    assert status == 400
    assert body["error"]["code"] == "bad_request"
    assert body["error"]["request_id"]


def test_a_body_sent_as_another_content_type_is_a_415() -> None:
    status, body = _call(
        "POST",
        "/things",
        raw_body=b'{"name": "a", "count": 1}',
        headers={"content-type": "text/plain;charset=UTF-8"},
    )

    assert status == 415
    assert body["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    "event_body",
    [
        pytest.param(base64.b64encode(b'{"name": "\xff\xfe"}').decode(), id="not-utf8"),
        pytest.param("not base64!", id="not-base64"),
    ],
)
def test_a_base64_body_that_does_not_decode_to_utf8_is_a_400(event_body: str) -> None:
    event = http_event("POST", "/things") | {"body": event_body, "isBase64Encoded": True}

    response = resolve(app, event, lambda_context("test"))

    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["message"] == "request body is not valid UTF-8"


def test_json_nested_deeper_than_python_recurses_is_a_400() -> None:
    depth = sys.getrecursionlimit() * 2

    status, body = _call("POST", "/things", raw_body=b"[" * depth + b"]" * depth)

    assert status == 400
    assert body["error"]["message"].startswith("request body is not valid JSON")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "a"}, "count"),
        ({"name": "a", "count": "many"}, "count"),
        ({"name": "a", "count": 1, "admin": True}, "admin"),
    ],
)
def test_invalid_or_unknown_fields_are_a_422_naming_the_field(payload: Any, field: str) -> None:
    status, body = _call("POST", "/things", body=payload)

    assert status == 422
    assert body["error"]["code"] == "validation_error"
    assert any(field in detail["loc"] for detail in body["error"]["details"])


def test_a_body_over_one_mebibyte_is_a_413_before_parsing() -> None:
    big = b'{"name": "' + b"x" * MAX_BODY_BYTES + b'", "count": 1}'

    status, body = _call("POST", "/things", raw_body=big)

    assert status == 413
    assert body["error"]["code"] == "payload_too_large"


def test_base64_bodies_are_measured_decoded() -> None:
    assert body_size({"body": "QUJD", "isBase64Encoded": True}) == 3
    assert body_size({"body": "ção"}) == 5
    assert body_size({}) == 0


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/things/missing", 404, "not_found"),
        ("/things/taken", 409, "conflict"),
        ("/things/duplicate", 409, "conflict"),
        ("/things/db-down", 503, "service_unavailable"),
        ("/nowhere", 404, "not_found"),
    ],
)
def test_domain_and_database_errors_map_to_status_codes(path: str, status: int, code: str) -> None:
    got, body = _call("GET", path)

    assert got == status
    assert body["error"]["code"] == code


def test_an_unexpected_error_is_a_500_that_leaks_nothing() -> None:
    status, body = _call("GET", "/things/crash")

    assert status == 500
    assert body == {
        "error": {
            "code": "internal_error",
            "message": "internal error",
            "request_id": body["error"]["request_id"],
        }
    }
    assert "hunter2" not in json.dumps(body)


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=xyz",
        "application/x-www-form-urlencoded",
        "text/plain",
        None,
    ],
)
def test_anything_but_json_is_a_415_before_any_parser_runs(content_type: str | None) -> None:
    event = http_event("POST", "/things", raw_body=b'{"name": "a", "count": 1}')
    if content_type is None:
        del event["headers"]["content-type"]
    else:
        event["headers"]["content-type"] = content_type

    response = resolve(app, event, lambda_context("test"))

    assert response["statusCode"] == 415
    assert "application/json" in json.loads(response["body"])["error"]["message"]


def test_json_with_a_charset_is_accepted() -> None:
    status, _ = _call(
        "POST",
        "/things",
        body={"name": "a", "count": 1},
        headers={"content-type": "Application/JSON; charset=utf-8"},
    )

    assert status == 200


@pytest.mark.parametrize(
    ("raw", "location"),
    [
        (b'{"name": "a\\u0000b", "count": 1}', ["body", "name"]),
        (b'{"name": "a", "count": 1, "tags": [{"x": "\\u0000"}]}', ["body", "tags", "0", "x"]),
        (b'{"name": "a", "count": 1, "n\\u0000": 1}', ["body"]),
    ],
)
def test_a_nul_character_anywhere_is_a_422_naming_where(raw: bytes, location: list[str]) -> None:
    status, body = _call("POST", "/things", raw_body=raw)

    assert status == 422
    assert body["error"]["details"][0]["loc"] == location


def test_a_duplicate_json_key_is_a_400_not_last_one_wins() -> None:
    status, body = _call("POST", "/things", raw_body=b'{"name": "a", "count": 1, "count": 2}')

    assert status == 400
    assert body["error"]["code"] == "duplicate_json_key"


def test_json_deeper_than_the_limit_is_a_400_and_at_the_limit_is_parsed() -> None:
    depth = MAX_JSON_DEPTH
    at_limit = b'{"name": "a", "count": 1, "x": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    over = b'{"name": "a", "count": 1, "x": ' + b"[" * depth + b"]" * depth + b"}"

    assert parse_json(at_limit)["name"] == "a"
    status, body = _call("POST", "/things", raw_body=over)
    assert status == 400
    assert "nested deeper" in body["error"]["message"]


class _Taken(Conflict):
    code = "thing_taken"
    constraints = ("things_name_key",)
    constraint_message = "a thing with this name exists"


class _Violation(psycopg.errors.UniqueViolation):
    def __init__(self, constraint: str) -> None:
        super().__init__("duplicate key value violates unique constraint")
        self.constraint = constraint

    @property
    def diag(self) -> Any:
        return type("Diag", (), {"constraint_name": self.constraint})()


def test_a_mapped_constraint_becomes_its_domain_error_and_no_name_leaks() -> None:
    mapped = error_for_integrity(_Violation("things_name_key"))
    unmapped = error_for_integrity(_Violation("things_secret_pkey"))

    assert (type(mapped), mapped.code, mapped.message) == (
        _Taken,
        "thing_taken",
        "a thing with this name exists",
    )
    assert (unmapped.status, unmapped.code) == (409, "conflict")
    assert "things_secret_pkey" not in unmapped.message
