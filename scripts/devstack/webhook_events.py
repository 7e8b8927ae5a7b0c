"""Provider events in each provider's real JSON shape (the templates in tests/fixtures/webhooks),
signed with each provider's real scheme: what the tests deliver and what
``scripts/send_test_webhook.py`` sends to the local gateway."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from lambdas.billing.providers.mercadopago_webhooks import sign as sign_mercadopago

FIXTURES: Final = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "webhooks"
STRIPE_EVENTS: Final = (
    "checkout.session.completed",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)
MERCADOPAGO_EVENTS: Final = ("payment", "subscription_preapproval")


@dataclass(frozen=True)
class SignedDelivery:
    """A delivery as the provider makes it: path with query string, raw body, headers."""

    path: str
    body: bytes
    headers: dict[str, str]
    event_id: str


def _template(provider: str, name: str, replacements: dict[str, str]) -> dict[str, Any]:
    text = (FIXTURES / provider / f"{name}.json").read_text(encoding="utf-8")
    for token, value in replacements.items():
        text = text.replace(token, value)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def stripe_event(
    name: str,
    *,
    subscription: str,
    customer: str,
    client_reference: str | None = None,
    event_id: str | None = None,
    created: int | None = None,
    template: str | None = None,
) -> dict[str, Any]:
    """A Stripe event of type ``name`` about ``subscription``/``customer``, with a fresh id."""
    event = _template(
        "stripe",
        template or name,
        {
            "__SUBSCRIPTION__": subscription,
            "__CUSTOMER__": customer,
            "__CLIENT_REFERENCE__": client_reference or "",
        },
    )
    event["id"] = event_id or f"evt_{uuid.uuid4().hex[:24]}"
    event["created"] = int(time.time()) if created is None else created
    if name == "checkout.session.completed" and client_reference is None:
        event["data"]["object"]["client_reference_id"] = None
    return event


def sign_stripe(secret: str, body: bytes, timestamp: int) -> str:
    """Stripe's ``Stripe-Signature``: ``t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def stripe_delivery(
    secret: str, event: dict[str, Any], *, timestamp: int | None = None
) -> SignedDelivery:
    body = json.dumps(event, ensure_ascii=False).encode()
    signed_at = int(time.time()) if timestamp is None else timestamp
    return SignedDelivery(
        path="/api/billing/webhooks/stripe",
        body=body,
        headers={
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": sign_stripe(secret, body, signed_at),
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        },
        event_id=str(event["id"]),
    )


def mercadopago_notification(
    name: str, *, data_id: str, notification_id: int | None = None
) -> dict[str, Any]:
    """A Mercado Pago notification of type ``name`` about resource ``data_id``, fresh id."""
    notification = _template("mercadopago", name, {"__SUBSCRIPTION__": data_id})
    notification["data"]["id"] = data_id
    notification["id"] = notification_id or uuid.uuid4().int % 10**12
    return notification


def mercadopago_delivery(
    secret: str,
    notification: dict[str, Any],
    *,
    request_id: str | None = None,
    ts: int | None = None,
) -> SignedDelivery:
    data_id = str(notification["data"]["id"])
    request = request_id or str(uuid.uuid4())
    stamp = str(int(time.time()) if ts is None else ts)
    return SignedDelivery(
        path=f"/api/billing/webhooks/mercadopago?data.id={data_id}&type={notification['type']}",
        body=json.dumps(notification).encode(),
        headers={
            "content-type": "application/json",
            "x-signature": sign_mercadopago(secret, data_id=data_id, request_id=request, ts=stamp),
            "x-request-id": request,
        },
        event_id=str(notification.get("id", "")),
    )
