"""Payment webhooks as Stripe and Mercado Pago send them: events in the providers' real shapes
(tests/fixtures/webhooks), signed with their real schemes, through the billing handler."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from unittest.mock import ANY

import boto3
import pytest

from scripts.devstack.aws_resources import DEV_WEBHOOK_SECRETS, LocalResources
from scripts.devstack.seed_catalog import dev_subscription_ids, find_plan
from scripts.devstack.webhook_events import (
    SignedDelivery,
    mercadopago_delivery,
    mercadopago_notification,
    sign_stripe,
    stripe_delivery,
    stripe_event,
)
from tests.integration.conftest import World
from tests.support.factories import TestTenant
from tests.support.handlers import HandlerResult, call

STRIPE = DEV_WEBHOOK_SECRETS["stripe"]
MERCADOPAGO = DEV_WEBHOOK_SECRETS["mercadopago"]


def _deliver(delivery: SignedDelivery) -> HandlerResult:
    path, _, query = delivery.path.partition("?")
    return call("POST", path, raw_body=delivery.body, headers=delivery.headers, query=query)


def _stripe(tenant: TestTenant, name: str, **overrides: Any) -> dict[str, Any]:
    _, subscription, customer = dev_subscription_ids(tenant.id)
    return stripe_event(name, subscription=subscription, customer=customer, **overrides)


def _subscription(owner, tenant: TestTenant) -> Any:
    return owner.execute(
        """
        SELECT id, status, provider, provider_subscription_id, provider_customer_id,
               canceled_at, updated_at
        FROM public.subscriptions WHERE tenant_id = %s ORDER BY created_at DESC LIMIT 1
        """,
        (tenant.id,),
    ).fetchone()


def _events(owner) -> Any:
    return owner.execute("SELECT * FROM public.payment_events ORDER BY received_at").fetchall()


def _idempotency_items(resources: LocalResources) -> int:
    table = boto3.client("dynamodb")
    return int(table.scan(TableName=resources.idempotency_table)["Count"])


# Stripe


def test_a_stripe_payment_failure_turns_the_subscription_past_due_once_in_ten_deliveries(
    world: World, owner, lambda_env: LocalResources
) -> None:
    # Given a Stripe-signed invoice.payment_failed about tenant a's subscription
    delivery = stripe_delivery(STRIPE, _stripe(world.a, "invoice.payment_failed"))

    # When Stripe delivers it ten times
    first = _deliver(delivery)
    after_first = _subscription(owner, world.a)
    replies = [_deliver(delivery) for _ in range(9)]

    # Then it was applied once, recorded once, and PostgreSQL alone deduplicated it
    assert (first.status, first.body) == (
        200,
        {"event_id": delivery.event_id, "status": "processed"},
    )
    assert all((r.status, r.body["status"]) == (200, "duplicate") for r in replies)
    assert after_first["status"] == "past_due"
    assert _subscription(owner, world.a) == after_first
    [event] = _events(owner)
    assert (event["status"], event["provider"]) == ("processed", "stripe")
    assert event["subscription_id"] == after_first["id"]
    assert event["amount"] == find_plan("professional").price_monthly
    assert event["currency"] == "BRL"
    assert _idempotency_items(lambda_env) == 0
    assert _subscription(owner, world.b)["status"] == "active"


def test_a_checkout_links_our_subscription_and_stripe_drives_it_afterwards(
    world: World, owner, lambda_env: LocalResources
) -> None:
    # Given a subscription the tenant started through the API (no provider yet)
    owner.execute(
        "UPDATE public.subscriptions SET status = 'canceled' WHERE tenant_id = %s", (world.a.id,)
    )
    admin = world.a.user("admin")
    created = call(
        "POST",
        "/api/billing/subscribe",
        user=admin,
        body={"plan_id": str(find_plan("starter").id)},
    )
    assert created.body["provider"] == "manual"
    ours = created.body["id"]

    # When Stripe reports the checkout that names it, then the subscription's life
    checkout = stripe_event(
        "checkout.session.completed",
        subscription="sub_1QdCheckout",
        customer="cus_QdCheckout",
        client_reference=ours,
    )
    assert _deliver(stripe_delivery(STRIPE, checkout)).body["status"] == "processed"
    linked = _subscription(owner, world.a)

    def later(name: str, **kw: Any) -> dict[str, Any]:
        return stripe_event(name, subscription="sub_1QdCheckout", customer="cus_QdCheckout", **kw)

    statuses = []
    for event in (
        later("invoice.payment_failed"),
        later("invoice.paid", template="invoice.paid.legacy"),
        later("customer.subscription.updated"),  # Stripe says past_due
        later("customer.subscription.deleted"),
    ):
        assert _deliver(stripe_delivery(STRIPE, event)).body["status"] == "processed"
        statuses.append(_subscription(owner, world.a)["status"])

    # Then
    assert str(linked["id"]) == ours
    assert (linked["provider"], linked["provider_subscription_id"]) == ("stripe", "sub_1QdCheckout")
    assert (linked["provider_customer_id"], linked["status"]) == ("cus_QdCheckout", "active")
    assert statuses == ["past_due", "active", "past_due", "canceled"]
    assert _subscription(owner, world.a)["canceled_at"] is not None
    plan_periods = owner.execute(
        "SELECT count(*) AS n FROM public.tenant_subscriptions "
        "WHERE tenant_id = %s AND status = 'active'",
        (world.a.id,),
    ).fetchone()
    assert plan_periods["n"] == 0
    listed = call("GET", "/api/billing/payment-events", user=admin)
    assert len(listed.body["items"]) == 5


def test_an_older_event_delivered_late_does_not_undo_a_newer_one(
    world: World, owner, lambda_env: LocalResources
) -> None:
    now = int(time.time())
    paid = _stripe(world.a, "invoice.paid", created=now)
    stale = _stripe(world.a, "customer.subscription.updated", created=now - 60)  # past_due

    _deliver(stripe_delivery(STRIPE, paid))
    late = _deliver(stripe_delivery(STRIPE, stale))

    assert late.body["status"] == "ignored"
    assert _subscription(owner, world.a)["status"] == "active"


def test_an_event_about_another_tenants_subscription_changes_only_that_tenant(
    world: World, owner, lambda_env: LocalResources
) -> None:
    _deliver(stripe_delivery(STRIPE, _stripe(world.b, "invoice.payment_failed")))

    assert _subscription(owner, world.b)["status"] == "past_due"
    assert _subscription(owner, world.a)["status"] == "active"
    mine = call("GET", "/api/billing/payment-events", user=world.a.user("admin"))
    theirs = call("GET", "/api/billing/payment-events", user=world.b.user("admin"))
    assert mine.body["items"] == []
    assert len(theirs.body["items"]) == 1


def test_unknown_subscriptions_and_unhandled_types_are_recorded_as_ignored(
    world: World, owner, lambda_env: LocalResources
) -> None:
    unknown = stripe_event("invoice.paid", subscription="sub_nobody", customer="cus_nobody")
    unhandled = _stripe(world.a, "invoice.paid") | {"type": "invoice.created"}

    assert _deliver(stripe_delivery(STRIPE, unknown)).body["status"] == "ignored"
    assert _deliver(stripe_delivery(STRIPE, unhandled)).body["status"] == "ignored"
    assert [e["status"] for e in _events(owner)] == ["ignored", "ignored"]
    assert _subscription(owner, world.a)["status"] == "active"


def _recorded(owner, payment_event_id: Any) -> tuple[list[str], list[tuple[str, Any]]]:
    """The audit actions and (event type, reason) of the outbox events about one delivery."""
    audited = owner.execute(
        "SELECT action FROM alquimista_platform.audit_logs WHERE resource_id = %s",
        (str(payment_event_id),),
    ).fetchall()
    emitted = owner.execute(
        "SELECT event_type, payload->>'reason' AS reason FROM alquimista_platform.domain_outbox "
        "WHERE aggregate_id = %s",
        (str(payment_event_id),),
    ).fetchall()
    return [a["action"] for a in audited], [(e["event_type"], e["reason"]) for e in emitted]


def test_each_delivery_is_recorded_as_what_it_did_applied_ignored_or_only_received(
    world: World, owner, lambda_env: LocalResources
) -> None:
    # Given a delivery that changes a subscription, two that change nothing, and one that
    # must be fetched from the provider before it can change anything
    preapproval = f"2c9380847{uuid.uuid4().hex[:23]}"
    _link_to_mercadopago(owner, world.b, preapproval)
    deliveries = [
        stripe_delivery(STRIPE, _stripe(world.a, "invoice.payment_failed")),
        stripe_delivery(STRIPE, stripe_event("invoice.paid", subscription="sub_x", customer="c")),
        stripe_delivery(STRIPE, _stripe(world.a, "invoice.paid") | {"type": "invoice.created"}),
        mercadopago_delivery(
            MERCADOPAGO, mercadopago_notification("subscription_preapproval", data_id=preapproval)
        ),
    ]

    # When each is delivered
    statuses = [_deliver(d).body["status"] for d in deliveries]

    # Then each leaves one audit row and one event naming what happened, with the reason
    assert statuses == ["processed", "ignored", "ignored", "received"]
    recorded = [_recorded(owner, e["id"]) for e in _events(owner)]
    assert recorded == [
        (["payment.event_applied"], [("payment.event_applied", None)]),
        (["payment.event_ignored"], [("payment.event_ignored", "no matching subscription")]),
        (["payment.event_ignored"], [("payment.event_ignored", "unhandled event type")]),
        (["payment.event_received"], [("payment.event_received", ANY)]),
    ]
    assert "fetch" in recorded[3][1][0][1]


def _forged(delivery: SignedDelivery, forgery: str) -> SignedDelivery:
    now = int(time.time())
    headers = dict(delivery.headers)
    body = delivery.body
    if forgery == "wrong_secret":
        headers["stripe-signature"] = sign_stripe("whsec_not_the_secret", body, now)
    elif forgery == "tampered_body":
        body = body.replace(b"invoice.payment_failed", b"invoice.paid")
    elif forgery == "stale":
        headers["stripe-signature"] = sign_stripe(STRIPE, body, now - 600)
    elif forgery == "missing":
        del headers["stripe-signature"]
    elif forgery == "overflowing_timestamp":
        huge = "1" + "0" * 309
        signature = sign_stripe(STRIPE, body, now).split(",")[1]
        headers["stripe-signature"] = f"t={huge},{signature}"
    elif forgery == "our_old_scheme":
        del headers["stripe-signature"]
        headers |= {"x-webhook-timestamp": str(now), "x-webhook-signature": "v1=00"}
    return SignedDelivery(delivery.path, body, headers, delivery.event_id)


@pytest.mark.parametrize(
    "forgery",
    [
        "wrong_secret",
        "tampered_body",
        "stale",
        "missing",
        "overflowing_timestamp",
        "our_old_scheme",
    ],
)
def test_a_badly_signed_stripe_webhook_is_401_and_writes_nothing(
    world: World, owner, lambda_env: LocalResources, forgery: str
) -> None:
    before = _subscription(owner, world.a)
    delivery = stripe_delivery(STRIPE, _stripe(world.a, "invoice.payment_failed"))

    result = _deliver(_forged(delivery, forgery))

    assert result.status == 401
    assert result.body["error"]["code"] == "invalid_signature"
    assert _events(owner) == []
    assert _subscription(owner, world.a) == before


def _signed_raw(body: bytes) -> SignedDelivery:
    headers = {
        "content-type": "application/json",
        "stripe-signature": sign_stripe(STRIPE, body, int(time.time())),
    }
    return SignedDelivery("/api/billing/webhooks/stripe", body, headers, "")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b'{"id": "evt_1", "type": ', 400, id="malformed"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, 400, id="100k-deep"),
        pytest.param(b'{"id": "evt_1", "id": "evt_2"}', 400, id="duplicate-key"),
        pytest.param(b'{"id": "evt_\\u0000", "object": "event"}', 422, id="nul"),
        pytest.param(
            b'{"id": "evt_1", "object": "event", "type": "invoice.paid"}', 422, id="shape"
        ),
    ],
)
def test_a_signed_but_malformed_stripe_event_is_refused_and_writes_nothing(
    world: World, owner, lambda_env: LocalResources, body: bytes, status: int
) -> None:
    result = _deliver(_signed_raw(body))

    assert result.status == status
    assert _events(owner) == []


def test_a_nul_anywhere_in_a_signed_event_is_a_422_naming_where(
    world: World, owner, lambda_env: LocalResources
) -> None:
    event = _stripe(world.a, "invoice.payment_failed")
    event["data"]["object"]["metadata"] = {"note": "a\x00b"}

    result = _deliver(stripe_delivery(STRIPE, event))

    assert result.status == 422
    assert result.body["error"]["details"][0]["loc"] == [
        "body",
        "data",
        "object",
        "metadata",
        "note",
    ]
    assert _events(owner) == []


@pytest.mark.parametrize("provider", ["pagarme", "manual", "paypal"])
def test_providers_without_a_real_implementation_are_refused(
    world: World, owner, lambda_env: LocalResources, provider: str
) -> None:
    delivery = stripe_delivery(STRIPE, _stripe(world.a, "invoice.paid"))

    result = call(
        "POST",
        f"/api/billing/webhooks/{provider}",
        raw_body=delivery.body,
        headers=delivery.headers,
    )

    assert result.status == 422
    assert _events(owner) == []


def test_a_webhook_sent_as_form_data_is_a_415(world: World, lambda_env: LocalResources) -> None:
    delivery = stripe_delivery(STRIPE, _stripe(world.a, "invoice.paid"))
    headers = delivery.headers | {"content-type": "multipart/form-data"}

    result = _deliver(SignedDelivery(delivery.path, delivery.body, headers, ""))

    assert result.status == 415


# Mercado Pago


def _link_to_mercadopago(owner, tenant: TestTenant, preapproval: str) -> None:
    with owner.transaction():
        owner.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant.id),))
        owner.execute(
            """
            UPDATE public.subscriptions
            SET provider = 'mercadopago', provider_subscription_id = %s
            WHERE tenant_id = %s
            """,
            (preapproval, tenant.id),
        )


def test_a_mercadopago_preapproval_notification_is_recorded_against_its_subscription(
    world: World, owner, lambda_env: LocalResources
) -> None:
    # Given tenant a's subscription billed by a Mercado Pago preapproval
    preapproval = f"2c9380847{uuid.uuid4().hex[:23]}"
    _link_to_mercadopago(owner, world.a, preapproval)
    notification = mercadopago_notification("subscription_preapproval", data_id=preapproval)

    # When Mercado Pago notifies it twice (each retry has its own x-request-id)
    first = _deliver(mercadopago_delivery(MERCADOPAGO, notification))
    again = _deliver(mercadopago_delivery(MERCADOPAGO, notification))

    # Then it is recorded once, tied to the subscription, and changes nothing by itself
    assert first.body == {"event_id": str(notification["id"]), "status": "received"}
    assert again.body["status"] == "duplicate"
    [event] = _events(owner)
    assert event["event_type"] == "subscription_preapproval.updated"
    assert event["subscription_id"] == _subscription(owner, world.a)["id"]
    assert event["processed_at"] is None
    assert "fetch" in event["error"]
    assert _subscription(owner, world.a)["status"] == "active"


def test_a_mercadopago_payment_notification_is_recorded_without_a_subscription(
    world: World, owner, lambda_env: LocalResources
) -> None:
    notification = mercadopago_notification("payment", data_id="1325458930")

    result = _deliver(mercadopago_delivery(MERCADOPAGO, notification))

    assert result.body["status"] == "received"
    [event] = _events(owner)
    assert (event["event_type"], event["subscription_id"]) == ("payment.updated", None)


@pytest.mark.parametrize(
    "forgery", ["wrong_secret", "other_data_id", "other_request_id", "stale", "huge_ts", "missing"]
)
def test_a_badly_signed_mercadopago_notification_is_401(
    world: World, owner, lambda_env: LocalResources, forgery: str
) -> None:
    notification = mercadopago_notification("payment", data_id="1325458930")
    delivery = mercadopago_delivery(
        "not-the-secret" if forgery == "wrong_secret" else MERCADOPAGO,
        notification,
        ts=int(time.time()) - 600 if forgery == "stale" else None,
    )
    headers = dict(delivery.headers)
    path = delivery.path
    if forgery == "other_data_id":
        path = path.replace("data.id=1325458930", "data.id=999")
    elif forgery == "other_request_id":
        headers["x-request-id"] = str(uuid.uuid4())
    elif forgery == "huge_ts":
        headers["x-signature"] = "ts=1" + "0" * 309 + "," + headers["x-signature"].split(",")[1]
    elif forgery == "missing":
        del headers["x-signature"]

    result = _deliver(SignedDelivery(path, delivery.body, headers, ""))

    assert result.status == 401
    assert result.body["error"]["code"] == "invalid_signature"
    assert _events(owner) == []


def test_the_dev_webhook_secrets_are_the_documented_fixed_ones(
    lambda_env: LocalResources,
) -> None:
    client = boto3.client("secretsmanager")
    stored = {
        provider: json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
        for provider, arn in lambda_env.webhook_secret_arns.items()
    }

    assert stored == {
        "stripe": {"webhook_secret": "whsec_alquimista_local_dev_only"},
        "mercadopago": {"webhook_secret": "alquimista-local-mercadopago-dev-only"},
    }
