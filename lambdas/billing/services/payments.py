"""Payment provider webhooks, and the tenant's view of the events they delivered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from lambdas.billing.models import (
    PaymentEventList,
    ReceiptStatus,
    WebhookProvider,
    WebhookReceipt,
)
from lambdas.billing.ports import PaymentsUowFactory, TenantPaymentsUowFactory
from lambdas.billing.providers import InvalidSignature, ProviderEvent, WebhookDelivery, read_event


def receive_payment_webhook(
    uow_factory: TenantPaymentsUowFactory,
    *,
    provider: WebhookProvider,
    delivery: WebhookDelivery,
    signing_secret: str,
    now: float,
) -> WebhookReceipt:
    """Verify a delivery with the provider's scheme, then record its event once and apply it
    to the subscription it names.

    Nothing is read from storage before the signature checks out; a delivery whose signature
    does not is audited as ``denied`` and refused. The subscription is found by
    the ids the provider knows (ours in a checkout's client_reference_id, else the provider's
    subscription or customer id), in whichever tenant holds it. The event row and the change
    commit together in that tenant's transaction; PostgreSQL's unique (provider, event id) is
    the one deduplication, so a redelivered event changes nothing however often it comes.
    The audit row and the outbox event say what the delivery did: ``payment.event_applied``,
    ``payment.event_ignored`` or ``payment.event_received`` (recorded, awaiting a fetch).
    """
    try:
        event = read_event(provider, delivery, secret=signing_secret, now=now)
    except InvalidSignature:
        # a forged or stale delivery names no tenant we can trust: the platform's chain keeps it
        with uow_factory(None) as uow:
            uow.audit.append(
                "webhook.denied",
                resource_type="payment_webhook",
                resource_id=provider,
                outcome="denied",
                details={"provider": provider},
            )
            uow.commit()
        raise
    located = None
    if event.names_a_subscription:
        with uow_factory(None) as uow:
            located = uow.payment_events.locate_subscription(
                provider,
                subscription_ref=event.subscription_ref,
                provider_subscription_id=event.provider_subscription_id,
                provider_customer_id=event.provider_customer_id,
            )
    with uow_factory(located.tenant_id if located else None) as uow:
        row_id = uow.payment_events.record_received(
            provider=provider,
            provider_event_id=event.event_id,
            event_type=event.event_type,
            amount=event.amount,
            currency=event.currency,
            payload=event.payload,
        )
        if row_id is None:
            return WebhookReceipt(event_id=event.event_id, status="duplicate")
        subscription_id = located.subscription_id if located else None
        status, reason = _outcome(event, found=located is not None)
        if status == "processed" and subscription_id is not None and event.change is not None:
            applied = uow.subscriptions.apply_provider_change(
                subscription_id,
                provider=provider,
                change=event.change,
                occurred_at=_at(event.occurred_at),
            )
            if not applied:
                status = "ignored"
                reason = "the subscription is canceled or saw a newer event from the provider"
        uow.payment_events.finish(
            row_id, status=status, subscription_id=subscription_id, error=reason
        )
        uow.record(
            _RECORDED_AS[status],
            aggregate_type="payment_event",
            aggregate_id=str(row_id),
            payload={
                "payment_event_id": row_id,
                "provider": provider,
                "provider_event_type": event.event_type,
                "subscription_id": subscription_id,
                "amount": event.amount,
                "currency": event.currency,
                **({"reason": reason} if status != "processed" else {}),
            },
        )
        uow.commit()
        return WebhookReceipt(event_id=event.event_id, status=status)


# What a recorded delivery did, as the audit action and outbox event of its transaction.
_RECORDED_AS: Final[dict[ReceiptStatus, str]] = {
    "processed": "payment.event_applied",
    "ignored": "payment.event_ignored",
    "received": "payment.event_received",
}


def _outcome(event: ProviderEvent, *, found: bool) -> tuple[ReceiptStatus, str | None]:
    if event.disposition == "unhandled":
        return "ignored", event.reason or "unhandled event type"
    if event.disposition == "needs_fetch":
        return "received", event.reason or "the provider's state must be fetched first"
    if not found:
        return "ignored", "no matching subscription"
    return "processed", None


def _at(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp is not None else None


def list_payment_events(uow_factory: PaymentsUowFactory, *, limit: int) -> PaymentEventList:
    """The newest provider events of the tenant's subscriptions."""
    with uow_factory() as uow:
        return PaymentEventList(items=uow.payment_events.list_for_tenant(limit=limit))
