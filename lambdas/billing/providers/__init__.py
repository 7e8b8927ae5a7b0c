"""Payment providers' webhooks as each provider really sends them: verify the delivery with the
provider's own scheme, then read the event into one provider-neutral ``ProviderEvent``.

Pure: no I/O (the signing secret is passed in), so every rule is tested without a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from lambdas.billing.models import SubscriptionStatus, WebhookProvider
from lambdas.shared.errors import Unauthorized


class InvalidSignature(Unauthorized):
    code = "invalid_signature"


@dataclass(frozen=True)
class WebhookDelivery:
    """One HTTP delivery: the raw body (signatures cover its exact bytes), lower-case header
    names and the query string's parameters."""

    body: bytes
    headers: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SubscriptionChange:
    """What an event may change on the subscription it is about; None fields stay as they are."""

    status: SubscriptionStatus | None = None
    provider_subscription_id: str | None = None
    provider_customer_id: str | None = None


# processed: it changes the subscription; needs_fetch: the notification names a resource whose
# state only the provider's API tells; unhandled: a type we do not act on.
Disposition = Literal["apply", "needs_fetch", "unhandled"]


@dataclass(frozen=True)
class ProviderEvent:
    provider: WebhookProvider
    event_id: str
    event_type: str
    payload: dict[str, Any]
    disposition: Disposition
    # how the event names the subscription: ours (a checkout's client_reference_id), or the
    # provider's subscription / customer id
    subscription_ref: UUID | None = None
    provider_subscription_id: str | None = None
    provider_customer_id: str | None = None
    change: SubscriptionChange | None = None
    amount: Decimal | None = None
    currency: str | None = None
    # when the provider created the event (orders status changes that arrive out of order)
    occurred_at: float | None = None
    reason: str | None = None

    @property
    def names_a_subscription(self) -> bool:
        return bool(
            self.subscription_ref or self.provider_subscription_id or self.provider_customer_id
        )


def read_event(
    provider: WebhookProvider, delivery: WebhookDelivery, *, secret: str, now: float
) -> ProviderEvent:
    """Verify ``delivery`` with ``provider``'s scheme and read its event.

    Raises InvalidSignature (401) before anything else is trusted, then the request-body
    errors (400/422) of a malformed event.
    """
    if provider == "stripe":
        from lambdas.billing.providers import stripe_webhooks  # noqa: PLC0415  # heavy SDK

        return stripe_webhooks.read_event(delivery, secret=secret)
    from lambdas.billing.providers import mercadopago_webhooks  # noqa: PLC0415

    return mercadopago_webhooks.read_event(delivery, secret=secret, now=now)
