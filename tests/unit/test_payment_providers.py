"""Each provider's verification and event reading, on the fixtures in the providers' real
shapes (pure: no I/O)."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import pytest

from lambdas.billing.providers import InvalidSignature, WebhookDelivery, read_event
from lambdas.billing.providers.mercadopago_webhooks import manifest
from lambdas.billing.providers.stripe_webhooks import amount
from lambdas.shared.errors import BadRequest, ValidationFailed
from scripts.devstack.webhook_events import (
    SignedDelivery,
    mercadopago_delivery,
    mercadopago_notification,
    sign_stripe,
    stripe_delivery,
    stripe_event,
)

SECRET = "whsec_unit_test"


def _delivery(signed: SignedDelivery) -> WebhookDelivery:
    _, _, query = signed.path.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&") if part)
    return WebhookDelivery(body=signed.body, headers=signed.headers, query=params)


def _stripe(name: str, **kwargs: object):
    event = stripe_event(name, subscription="sub_1", customer="cus_1", **kwargs)  # type: ignore[arg-type]
    return read_event(
        "stripe", _delivery(stripe_delivery(SECRET, event)), secret=SECRET, now=time.time()
    )


# Stripe


@pytest.mark.parametrize(
    ("name", "template", "status", "value"),
    [
        ("invoice.paid", None, "active", Decimal("797.00")),
        ("invoice.paid", "invoice.paid.legacy", "active", Decimal("797.00")),
        ("invoice.payment_failed", None, "past_due", Decimal("797.00")),
        ("customer.subscription.updated", None, "past_due", None),
        ("customer.subscription.deleted", None, "canceled", None),
    ],
)
def test_stripe_events_name_the_providers_subscription_and_their_new_status(
    name: str, template: str | None, status: str, value: Decimal | None
) -> None:
    event = _stripe(name, template=template)

    assert event.disposition == "apply"
    assert (event.provider_subscription_id, event.provider_customer_id) == ("sub_1", "cus_1")
    assert event.change is not None
    assert event.change.status == status
    assert event.amount == value
    assert event.subscription_ref is None


def test_a_checkout_names_our_subscription_by_client_reference_id() -> None:
    ours = uuid.uuid4()

    event = _stripe("checkout.session.completed", client_reference=str(ours))

    assert event.subscription_ref == ours
    assert event.change is not None
    assert (event.change.status, event.change.provider_subscription_id) == ("active", "sub_1")
    assert (event.amount, event.currency) == (Decimal("797.00"), "BRL")


def test_a_checkout_without_our_reference_names_nothing_of_ours() -> None:
    event = _stripe("checkout.session.completed", client_reference="not-a-uuid")

    assert event.subscription_ref is None


def test_an_unhandled_stripe_type_is_read_but_changes_nothing() -> None:
    event = stripe_event("invoice.paid", subscription="sub_1", customer="cus_1")
    event["type"] = "invoice.finalized"

    read = read_event(
        "stripe", _delivery(stripe_delivery(SECRET, event)), secret=SECRET, now=time.time()
    )

    assert (read.disposition, read.change) == ("unhandled", None)


def test_zero_decimal_currencies_are_not_divided() -> None:
    assert amount(500, "jpy") == Decimal(500)
    assert amount(79700, "brl") == Decimal("797.00")
    assert amount(None, "brl") is None


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "t=abc,v1=00",
        "v1=00",
        f"t={'1' + '0' * 309},v1=00",
        f"t={int(time.time())},v0=00",
    ],
    # the ids must not hold the timestamp: xdist's workers must collect the same tests
    ids=["missing", "empty", "bad-time", "no-time", "huge-time", "only-v0"],
)
def test_a_stripe_signature_that_does_not_verify_is_invalid(header: str | None) -> None:
    body = json.dumps(stripe_event("invoice.paid", subscription="s", customer="c")).encode()
    headers = {} if header is None else {"stripe-signature": header}

    with pytest.raises(InvalidSignature):
        read_event("stripe", WebhookDelivery(body, headers), secret=SECRET, now=time.time())


def test_one_of_several_stripe_signatures_may_match_during_rotation() -> None:
    body = json.dumps(stripe_event("invoice.paid", subscription="s", customer="c")).encode()
    now = int(time.time())
    old = sign_stripe("whsec_old", body, now)
    new = sign_stripe(SECRET, body, now).split(",")[1]
    headers = {"stripe-signature": f"{old},{new}"}

    event = read_event("stripe", WebhookDelivery(body, headers), secret=SECRET, now=now)

    assert event.event_type == "invoice.paid"


def test_a_signed_body_that_is_not_json_is_a_400_after_verification() -> None:
    body = b"{not json"
    headers = {"stripe-signature": sign_stripe(SECRET, body, int(time.time()))}

    with pytest.raises(BadRequest):
        read_event("stripe", WebhookDelivery(body, headers), secret=SECRET, now=time.time())


# Mercado Pago


def test_the_mercadopago_manifest_is_the_documented_one() -> None:
    assert (
        manifest(data_id="ABC123", request_id="req-1", ts="1704908010")
        == "id:abc123;request-id:req-1;ts:1704908010;"
    )
    assert manifest(data_id=None, request_id=None, ts="1") == "ts:1;"


def test_a_mercadopago_notification_is_verified_and_read() -> None:
    notification = mercadopago_notification("subscription_preapproval", data_id="pre_1")
    delivery = _delivery(mercadopago_delivery("mp", notification))

    event = read_event("mercadopago", delivery, secret="mp", now=time.time())

    assert (event.event_id, event.event_type) == (
        str(notification["id"]),
        "subscription_preapproval.updated",
    )
    assert (event.disposition, event.provider_subscription_id) == ("needs_fetch", "pre_1")


def test_mercadopago_timestamps_in_milliseconds_are_accepted() -> None:
    notification = mercadopago_notification("payment", data_id="123")
    signed = mercadopago_delivery("mp", notification, ts=int(time.time() * 1000))

    event = read_event("mercadopago", _delivery(signed), secret="mp", now=time.time())

    assert event.provider_subscription_id is None


@pytest.mark.parametrize("ts", ["1" + "0" * 309, "-5", "١٢٣", "12.5", ""])
def test_a_mercadopago_timestamp_that_is_no_timestamp_is_an_invalid_signature(ts: str) -> None:
    notification = mercadopago_notification("payment", data_id="123")
    signed = mercadopago_delivery("mp", notification)
    headers = dict(signed.headers)
    headers["x-signature"] = f"ts={ts}," + headers["x-signature"].split(",")[1]

    with pytest.raises(InvalidSignature):
        read_event(
            "mercadopago",
            _delivery(SignedDelivery(signed.path, signed.body, headers, "")),
            secret="mp",
            now=time.time(),
        )


def test_a_signed_mercadopago_notification_without_an_id_is_a_422() -> None:
    notification = mercadopago_notification("payment", data_id="123")
    del notification["id"]
    signed = mercadopago_delivery("mp", notification)

    with pytest.raises(ValidationFailed):
        read_event("mercadopago", _delivery(signed), secret="mp", now=time.time())
