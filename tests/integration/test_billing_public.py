"""The public billing route for sales contact requests (webhooks: test_billing_webhooks.py)."""

from __future__ import annotations

import json
import uuid

import pytest

from lambdas.shared.constants import COMMERCIAL_REQUESTS_PER_IP
from tests.integration.conftest import World
from tests.support.events import http_event, lambda_context
from tests.support.handlers import HandlerResult

CONTACT = {
    "company_name": "Empresa Exemplo Ltda",
    "contact_name": "Maria Exemplo",
    "email": "maria@example.com",
    "phone": "+55 11 99999-0000",
    "message": "Queremos o plano Enterprise",
    "consent_given": True,
}


def _contact(body, *, ip: str = "203.0.113.10") -> HandlerResult:
    from lambdas.billing.handler import lambda_handler  # noqa: PLC0415

    event = http_event("POST", "/api/billing/commercial-requests", body=body)
    event["requestContext"]["http"]["sourceIp"] = ip
    result = lambda_handler(event, lambda_context("billing"))
    return HandlerResult(result["statusCode"], json.loads(result["body"]), result["headers"])


def _requests(owner) -> int:
    row = owner.execute("SELECT count(*) AS n FROM public.commercial_requests").fetchone()
    return int(row["n"])


def _contact_raw(raw: bytes, *, content_type: str = "application/json") -> HandlerResult:
    from lambdas.billing.handler import lambda_handler  # noqa: PLC0415

    event = http_event(
        "POST",
        "/api/billing/commercial-requests",
        raw_body=raw,
        headers={"content-type": content_type},
    )
    result = lambda_handler(event, lambda_context("billing"))
    return HandlerResult(result["statusCode"], json.loads(result["body"]), result["headers"])


def test_a_commercial_request_is_recorded_without_the_raw_ip(world: World, owner) -> None:
    created = _contact(CONTACT)

    assert created.status == 201
    row = owner.execute(
        "SELECT * FROM public.commercial_requests WHERE id = %s", (created.body["id"],)
    ).fetchone()
    assert row["email"] == "maria@example.com"
    assert row["consent_given"] is True
    assert row["consent_at"] is not None
    assert "203.0.113.10" not in json.dumps(row["metadata"])


@pytest.mark.parametrize(
    "change",
    [
        {"consent_given": False},
        {"email": "not-an-email"},
        {"company_name": ""},
        {"unknown": "field"},
        {"message": "x" * 5001},
    ],
)
def test_an_invalid_commercial_request_is_422_and_not_counted(world: World, change) -> None:
    result = _contact({**CONTACT, **change})

    assert result.status == 422
    assert result.body["error"]["details"]


def test_commercial_requests_are_rate_limited_per_ip(world: World, owner) -> None:
    results = [_contact(CONTACT).status for _ in range(COMMERCIAL_REQUESTS_PER_IP + 1)]
    other_ip = _contact(CONTACT, ip="198.51.100.7")

    assert results == [201] * COMMERCIAL_REQUESTS_PER_IP + [429]
    assert other_ip.status == 201
    count = owner.execute("SELECT count(*) AS n FROM public.commercial_requests").fetchone()
    assert count["n"] == COMMERCIAL_REQUESTS_PER_IP + 1


def test_ended_rate_limit_windows_of_clients_that_never_return_are_dropped(
    world: World, owner
) -> None:
    # Given a client counted in a window that ended long ago, who never calls again
    owner.execute(
        """
        INSERT INTO public.public_rate_limits (bucket, subject, window_start, window_s, count)
        VALUES ('commercial_requests', 'gone-client', now() - interval '2 days', 3600, 4)
        """
    )

    # When another client calls
    assert _contact(CONTACT, ip="198.51.100.8").status == 201

    # Then only the current window's counter is left
    rows = owner.execute("SELECT subject FROM public.public_rate_limits").fetchall()
    assert len(rows) == 1
    assert rows[0]["subject"] != "gone-client"


def test_a_commercial_request_for_an_unknown_plan_is_422_unknown_plan(world: World) -> None:
    result = _contact({**CONTACT, "plan_id": str(uuid.uuid4())})

    assert result.status == 422
    assert result.body["error"]["code"] == "unknown_plan"
    assert "fkey" not in json.dumps(result.body)


def test_a_nul_character_in_a_commercial_request_is_a_422_naming_the_field(
    world: World, owner
) -> None:
    raw = json.dumps({**CONTACT, "company_name": "Acme\u0000Ltda"}).encode()

    result = _contact_raw(raw)

    assert result.status == 422
    assert result.body["error"]["details"][0]["loc"] == ["body", "company_name"]
    assert (
        owner.execute("SELECT count(*) AS n FROM public.commercial_requests").fetchone()["n"] == 0
    )


def test_a_repeated_key_in_a_commercial_request_is_a_400(world: World, owner) -> None:
    raw = b'{"company_name": "A", "contact_name": "B", "email": "b@example.com", ' + (
        b'"consent_given": false, "consent_given": true}'
    )

    result = _contact_raw(raw)

    assert result.status == 400
    assert result.body["error"]["code"] == "duplicate_json_key"
    assert (
        owner.execute("SELECT count(*) AS n FROM public.commercial_requests").fetchone()["n"] == 0
    )


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"],
)
def test_a_commercial_request_not_sent_as_json_is_a_415(world: World, content_type: str) -> None:
    result = _contact_raw(json.dumps(CONTACT).encode(), content_type=content_type)

    assert result.status == 415
    assert "application/json" in result.body["error"]["message"]
