"""Stripe webhooks: ``Stripe-Signature`` verified by the official SDK, events read in Stripe's
own shapes (https://docs.stripe.com/api/events/types).

What each handled event means for our subscription:
- ``checkout.session.completed`` (mode ``subscription``) links our subscription, named by the
  session's ``client_reference_id`` (or ``metadata.subscription_id``), to Stripe's subscription
  and customer; a paid session also makes it active.
- ``invoice.paid`` -> active; ``invoice.payment_failed`` -> past_due (the invoice names the
  subscription at ``parent.subscription_details.subscription`` since API 2025-03-31, at
  ``subscription`` before).
- ``customer.subscription.updated`` -> Stripe's status, where ours has one;
  ``customer.subscription.deleted`` -> canceled.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final
from uuid import UUID

import stripe
from pydantic import Field

from lambdas.billing.models import SubscriptionStatus
from lambdas.billing.providers import (
    InvalidSignature,
    ProviderEvent,
    SubscriptionChange,
    WebhookDelivery,
)
from lambdas.billing.providers._shape import ProviderObject, validate
from lambdas.shared.request_body import parse_json

SIGNATURE_HEADER: Final = "stripe-signature"
# The SDK's own default (300 s): a delivery signed longer ago is refused.
TOLERANCE_S: Final[int] = stripe.Webhook.DEFAULT_TOLERANCE

STATUS_BY_STRIPE_STATUS: Final[dict[str, SubscriptionStatus]] = {
    "active": "active",
    "trialing": "trialing",
    "past_due": "past_due",
    "unpaid": "past_due",
    "canceled": "canceled",
    "incomplete_expired": "canceled",
}
# https://docs.stripe.com/currencies#zero-decimal: amounts are in the currency's minor unit
ZERO_DECIMAL_CURRENCIES: Final = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)

CURRENCY_PATTERN: Final = "^[a-zA-Z]{3}$"

Expandable = str | dict[str, Any] | None


def _id(value: Expandable) -> str | None:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return value


class _EventData(ProviderObject):
    object: dict[str, Any]


class StripeEvent(ProviderObject):
    id: str = Field(min_length=1, max_length=255)
    object: str = Field(pattern="^event$")
    type: str = Field(min_length=1, max_length=100)
    created: int = Field(ge=0, le=253_402_300_799)  # up to 9999-12-31
    data: _EventData


class CheckoutSession(ProviderObject):
    id: str
    mode: str | None = None
    client_reference_id: str | None = Field(default=None, max_length=200)
    metadata: dict[str, str] | None = None
    customer: Expandable = None
    subscription: Expandable = None
    payment_status: str | None = None
    amount_total: int | None = None
    currency: str | None = Field(default=None, pattern=CURRENCY_PATTERN)


class _SubscriptionDetails(ProviderObject):
    subscription: Expandable = None


class _InvoiceParent(ProviderObject):
    subscription_details: _SubscriptionDetails | None = None


class Invoice(ProviderObject):
    id: str
    customer: Expandable = None
    subscription: Expandable = None
    parent: _InvoiceParent | None = None
    amount_paid: int | None = None
    amount_due: int | None = None
    currency: str | None = Field(default=None, pattern=CURRENCY_PATTERN)

    @property
    def subscription_id(self) -> str | None:
        details = self.parent.subscription_details if self.parent else None
        return _id(details.subscription if details else None) or _id(self.subscription)


class Subscription(ProviderObject):
    id: str
    customer: Expandable = None
    status: str


def amount(minor_units: int | None, currency: str | None) -> Decimal | None:
    if minor_units is None or currency is None:
        return None
    if currency.lower() in ZERO_DECIMAL_CURRENCIES:
        return Decimal(minor_units)
    return Decimal(minor_units) / 100


def _ours(session: CheckoutSession) -> UUID | None:
    reference = session.client_reference_id or (session.metadata or {}).get("subscription_id")
    try:
        return UUID(reference) if reference else None
    except ValueError:
        return None


def read_event(delivery: WebhookDelivery, *, secret: str) -> ProviderEvent:
    """Verify with ``stripe.WebhookSignature.verify_header`` (what ``construct_event`` runs
    first, with its tolerance), then parse the body with the API's strict JSON rules."""
    try:
        stripe.WebhookSignature.verify_header(
            delivery.body, delivery.headers.get(SIGNATURE_HEADER), secret, TOLERANCE_S
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError):
        raise InvalidSignature("the Stripe-Signature does not verify") from None
    payload = parse_json(delivery.body)
    event = validate(StripeEvent, payload)
    base: dict[str, Any] = {
        "provider": "stripe",
        "event_id": event.id,
        "event_type": event.type,
        "payload": payload,
        "occurred_at": float(event.created),
    }
    where = ("body", "data", "object")
    obj = event.data.object
    if event.type == "checkout.session.completed":
        session = validate(CheckoutSession, obj, where=where)
        if session.mode != "subscription":
            return ProviderEvent(**base, disposition="unhandled", reason="not a subscription")
        paid = session.payment_status in {"paid", "no_payment_required"}
        subscription_id, customer_id = _id(session.subscription), _id(session.customer)
        return ProviderEvent(
            **base,
            disposition="apply",
            subscription_ref=_ours(session),
            change=SubscriptionChange(
                status="active" if paid else None,
                provider_subscription_id=subscription_id,
                provider_customer_id=customer_id,
            ),
            amount=amount(session.amount_total, session.currency),
            currency=session.currency.upper() if session.currency else None,
        )
    if event.type in {"invoice.paid", "invoice.payment_failed"}:
        invoice = validate(Invoice, obj, where=where)
        paid = event.type == "invoice.paid"
        if invoice.subscription_id is None:
            return ProviderEvent(**base, disposition="unhandled", reason="not a subscription")
        return ProviderEvent(
            **base,
            disposition="apply",
            provider_subscription_id=invoice.subscription_id,
            provider_customer_id=_id(invoice.customer),
            change=SubscriptionChange(status="active" if paid else "past_due"),
            amount=amount(invoice.amount_paid if paid else invoice.amount_due, invoice.currency),
            currency=invoice.currency.upper() if invoice.currency else None,
        )
    if event.type in {"customer.subscription.updated", "customer.subscription.deleted"}:
        subscription = validate(Subscription, obj, where=where)
        status = (
            "canceled"
            if event.type == "customer.subscription.deleted"
            else STATUS_BY_STRIPE_STATUS.get(subscription.status)
        )
        return ProviderEvent(
            **base,
            disposition="apply" if status else "unhandled",
            provider_subscription_id=subscription.id,
            provider_customer_id=_id(subscription.customer),
            change=SubscriptionChange(status=status),
            reason=None if status else f"Stripe status {subscription.status} changes nothing",
        )
    return ProviderEvent(**base, disposition="unhandled", reason="unhandled event type")
