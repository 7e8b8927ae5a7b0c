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
from lambdas.shared.errors import Conflict, NotFound
from lambdas.shared.http import body_size, create_resolver, resolve
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
    assert body["error"]["message"] == "request body is not valid JSON"


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
