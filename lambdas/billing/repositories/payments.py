from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from lambdas.billing.models import PaymentEventResponse, WebhookProvider
from lambdas.billing.ports import LocatedSubscription
from lambdas.shared.db import Connection


class PaymentEventRepository:
    """Provider events: written without a tenant (the table is not tenant-owned); listed per
    tenant through the tenant's subscriptions."""

    def __init__(self, conn: Connection, tenant_id: UUID | None) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def locate_subscription(
        self,
        provider: WebhookProvider,
        *,
        subscription_ref: UUID | None,
        provider_subscription_id: str | None,
        provider_customer_id: str | None,
    ) -> LocatedSubscription | None:
        """The subscription a verified event names, in whichever tenant holds it
        (``billing_locate_subscription_v1``)."""
        row = self._conn.execute(
            """
            SELECT tenant_id, subscription_id
            FROM public.billing_locate_subscription_v1(%s, %s, %s, %s)
            """,
            (provider, subscription_ref, provider_subscription_id, provider_customer_id),
        ).fetchone()
        return LocatedSubscription(row["tenant_id"], row["subscription_id"]) if row else None

    def record_received(
        self,
        *,
        provider: WebhookProvider,
        provider_event_id: str,
        event_type: str,
        amount: Decimal | None,
        currency: str | None,
        payload: dict[str, Any],
    ) -> UUID | None:
        """Insert the event once; None when the provider already delivered it."""
        row = self._conn.execute(
            """
            INSERT INTO public.payment_events
                (provider, provider_event_id, event_type, amount, currency, payload)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (provider, provider_event_id) DO NOTHING
            RETURNING id
            """,
            (provider, provider_event_id, event_type, amount, currency, Jsonb(payload)),
        ).fetchone()
        return row["id"] if row else None

    def finish(
        self,
        event_id: UUID,
        *,
        status: str,
        subscription_id: UUID | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome; a 'received' event (waiting for a reconciliation) stays
        unprocessed."""
        self._conn.execute(
            """
            UPDATE public.payment_events
            SET status = %(status)s, subscription_id = %(subscription)s, error = %(error)s,
                processed_at = CASE WHEN %(status)s = 'received' THEN NULL ELSE now() END
            WHERE id = %(id)s
            """,
            {"status": status, "subscription": subscription_id, "error": error, "id": event_id},
        )

    def list_for_tenant(self, *, limit: int) -> list[PaymentEventResponse]:
        rows = self._conn.execute(
            """
            SELECT e.id, e.provider, e.provider_event_id, e.event_type, e.status,
                   e.subscription_id, e.amount, e.currency, e.received_at, e.processed_at
            FROM public.payment_events AS e
            JOIN public.subscriptions AS s ON s.id = e.subscription_id
            WHERE s.tenant_id = %s
            ORDER BY e.received_at DESC, e.id
            LIMIT %s
            """,
            (self._tenant_id, limit),
        ).fetchall()
        return [PaymentEventResponse(**row) for row in rows]
