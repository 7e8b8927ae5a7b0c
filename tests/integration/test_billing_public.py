"""The public billing routes: sales contact requests and payment webhooks."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest

from lambdas.billing.service import sign
from lambdas.shared.constants import COMMERCIAL_REQUESTS_PER_IP
from scripts.devstack.aws_resources import LocalResources
from tests.integration.conftest import World
from tests.support.events import http_event, lambda_context
from tests.support.handlers import HandlerResult, call

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


def test_a_commercial_request_for_an_unknown_plan_is_409(world: World) -> None:
    result = _contact({**CONTACT, "plan_id": str(uuid.uuid4())})

    assert result.status == 409


# Webhooks


def _secret(resources: LocalResources) -> str:
    value = boto3.client("secretsmanager").get_secret_value(SecretId=resources.webhook_secret_arn)
    return str(json.loads(value["SecretString"])["signing_secret"])


def _provider_subscription(owner, tenant_id) -> str:
    row = owner.execute(
        """
        SELECT provider_subscription_id FROM public.subscriptions
        WHERE tenant_id = %s ORDER BY created_at DESC LIMIT 1
        """,
        (tenant_id,),
    ).fetchone()
    return str(row["provider_subscription_id"])


def _deliver(
    secret: str,
    payload: dict[str, Any],
    *,
    provider: str = "manual",
    timestamp: int | None = None,
    signature: str | None = None,
) -> HandlerResult:
    body = json.dumps(payload).encode()
    sent_at = str(timestamp if timestamp is not None else int(time.time()))
    headers = {
        "x-webhook-timestamp": sent_at,
        "x-webhook-signature": signature or sign(secret, sent_at, body),
    }
    return call("POST", f"/api/billing/webhooks/{provider}", raw_body=body, headers=headers)


def _event(world: World, owner, event_type: str = "payment.failed") -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "data": {
            "tenant_id": str(world.a.id),
            "subscription_id": _provider_subscription(owner, world.a.id),
            "amount": "797.00",
            "currency": "BRL",
        },
    }


def _subscription(owner, tenant_id) -> Any:
    return owner.execute(
        """
        SELECT status, updated_at FROM public.subscriptions
        WHERE tenant_id = %s ORDER BY created_at DESC LIMIT 1
        """,
        (tenant_id,),
    ).fetchone()


def _events(owner) -> Any:
    return owner.execute("SELECT * FROM public.payment_events ORDER BY received_at").fetchall()


def _idempotency_items(resources: LocalResources) -> int:
    table = boto3.client("dynamodb")
    return int(table.scan(TableName=resources.idempotency_table)["Count"])


def test_a_signed_webhook_updates_the_subscription_once_in_ten_deliveries(
    world: World, owner, lambda_env: LocalResources
) -> None:
    secret = _secret(lambda_env)
    payload = _event(world, owner, "payment.failed")

    first = _deliver(secret, payload)
    after_first = _subscription(owner, world.a.id)
    records = _idempotency_items(lambda_env)
    replies = [_deliver(secret, payload) for _ in range(9)]

    assert first.status == 200
    assert first.body == {"event_id": payload["id"], "status": "processed"}
    # the replies are the stored first response (Powertools idempotency), not the database's
    # own "duplicate" answer, which only a delivery past an expired record gets
    assert records == 1
    assert all((reply.status, reply.body) == (200, first.body) for reply in replies)
    assert _idempotency_items(lambda_env) == 1
    assert after_first["status"] == "past_due"
    assert _subscription(owner, world.a.id) == after_first
    [event] = _events(owner)
    assert (event["status"], event["provider_event_id"]) == ("processed", payload["id"])
    assert event["subscription_id"] is not None


def test_the_database_alone_deduplicates_when_the_idempotency_record_is_gone(
    world: World, owner, lambda_env: LocalResources
) -> None:
    secret = _secret(lambda_env)
    payload = _event(world, owner, "payment.failed")
    _deliver(secret, payload)
    ddb = boto3.client("dynamodb")
    records = ddb.scan(TableName=lambda_env.idempotency_table)["Items"]
    for item in records:
        ddb.delete_item(TableName=lambda_env.idempotency_table, Key={"id": item["id"]})

    again = _deliver(secret, payload)

    assert len(records) == 1
    assert again.body["status"] == "duplicate"
    assert len(_events(owner)) == 1


@pytest.mark.parametrize(
    "forgery",
    ["wrong_secret", "tampered_body", "stale", "future", "missing", "garbage_timestamp"],
)
def test_a_badly_signed_webhook_is_401_and_writes_nothing(
    world: World, owner, lambda_env: LocalResources, forgery: str
) -> None:
    secret = _secret(lambda_env)
    payload = _event(world, owner)
    before = _subscription(owner, world.a.id)
    body = json.dumps(payload).encode()
    now = int(time.time())
    headers = {"x-webhook-timestamp": str(now), "x-webhook-signature": sign(secret, str(now), body)}
    if forgery == "wrong_secret":
        headers["x-webhook-signature"] = sign("not-the-secret", str(now), body)
    elif forgery == "tampered_body":
        body = body.replace(b"payment.failed", b"payment.succeeded")
    elif forgery in {"stale", "future"}:
        # well outside the 5-minute tolerance, so a slow run cannot cross the boundary
        moved = str(now - 600 if forgery == "stale" else now + 600)
        headers = {"x-webhook-timestamp": moved, "x-webhook-signature": sign(secret, moved, body)}
    elif forgery == "missing":
        headers = {}
    else:
        headers["x-webhook-timestamp"] = "yesterday"

    result = call("POST", "/api/billing/webhooks/manual", raw_body=body, headers=headers)

    assert result.status == 401
    assert result.body["error"]["code"] == "invalid_signature"
    assert _events(owner) == []
    assert _subscription(owner, world.a.id) == before
    assert _idempotency_items(lambda_env) == 0


def test_a_forged_webhook_with_an_idempotency_key_records_nothing_either(
    world: World, owner, lambda_env: LocalResources
) -> None:
    body = json.dumps(_event(world, owner)).encode()
    headers = {
        "x-webhook-timestamp": str(int(time.time())),
        "x-webhook-signature": "v1=00",
        "idempotency-key": "attacker-key",
    }

    result = call("POST", "/api/billing/webhooks/manual", raw_body=body, headers=headers)

    assert result.status == 401
    assert _idempotency_items(lambda_env) == 0


def test_payment_events_move_the_subscription_through_its_states(
    world: World, owner, lambda_env: LocalResources
) -> None:
    secret = _secret(lambda_env)

    _deliver(secret, _event(world, owner, "payment.failed"))
    assert _subscription(owner, world.a.id)["status"] == "past_due"
    _deliver(secret, _event(world, owner, "payment.succeeded"))
    assert _subscription(owner, world.a.id)["status"] == "active"
    _deliver(secret, _event(world, owner, "subscription.canceled"))
    assert _subscription(owner, world.a.id)["status"] == "canceled"
    ended = owner.execute(
        "SELECT count(*) AS n FROM public.tenant_subscriptions WHERE tenant_id = %s "
        "AND status = 'active'",
        (world.a.id,),
    ).fetchone()
    assert ended["n"] == 0


def test_unknown_events_and_subscriptions_are_recorded_as_ignored(
    world: World, owner, lambda_env: LocalResources
) -> None:
    secret = _secret(lambda_env)
    unknown_type = _event(world, owner, "invoice.created")
    unknown_subscription = {**_event(world, owner), "data": {"tenant_id": str(world.a.id)}}

    assert _deliver(secret, unknown_type).body["status"] == "ignored"
    assert _deliver(secret, unknown_subscription).body["status"] == "ignored"
    assert {e["status"] for e in _events(owner)} == {"ignored"}
    assert _subscription(owner, world.a.id)["status"] == "active"


def test_an_unknown_provider_or_a_malformed_event_is_422(
    world: World, owner, lambda_env: LocalResources
) -> None:
    secret = _secret(lambda_env)

    assert _deliver(secret, _event(world, owner), provider="paypal").status == 422
    assert _deliver(secret, {"type": "payment.failed"}).status == 422
    assert _events(owner) == []


def test_the_admin_lists_only_their_tenants_payment_events(
    world: World, owner, lambda_env: LocalResources
) -> None:
    secret = _secret(lambda_env)
    mine = _event(world, owner)
    _deliver(secret, mine)
    theirs = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "payment.failed",
        "data": {
            "tenant_id": str(world.b.id),
            "subscription_id": _provider_subscription(owner, world.b.id),
        },
    }
    _deliver(secret, theirs)

    listed = call("GET", "/api/billing/payment-events", user=world.a.user("admin"))

    assert [e["provider_event_id"] for e in listed.body["items"]] == [mine["id"]]
    assert call("GET", "/api/billing/payment-events", user=world.a.user("member")).status == 403
