from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID, uuid4

from lambdas.billing.models import (
    BillingInterval,
    PlanPrice,
    SubscriptionResponse,
    WebhookProvider,
)
from lambdas.billing.providers import SubscriptionChange
from lambdas.billing.repositories import one
from lambdas.shared.db import Connection

_SUBSCRIPTION_SELECT = """
    SELECT s.id, s.plan_id, p.slug AS plan_slug, p.name AS plan_name, s.status, s.provider,
           s.billing_interval, s.amount, s.currency, s.current_period_start,
           s.current_period_end, s.canceled_at
    FROM public.subscriptions AS s
    JOIN public.subscription_plans AS p ON p.id = s.plan_id
"""


class SubscriptionRepository:
    """The tenant's subscription (provider view); every statement filters by the tenant.

    The plan history in ``tenant_subscriptions`` is kept by a trigger on ``subscriptions``
    (migration 022), so nothing here writes it.
    """

    def __init__(self, conn: Connection, tenant_id: UUID | None) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def live(self) -> SubscriptionResponse | None:
        """The live subscription (``subscription_is_live_v1``), locked for update."""
        row = self._conn.execute(
            _SUBSCRIPTION_SELECT
            + """
            WHERE s.tenant_id = %s AND public.subscription_is_live_v1(s.status)
            FOR UPDATE OF s
            """,
            (self._tenant_id,),
        ).fetchone()
        return SubscriptionResponse(**row) if row else None

    def latest(self) -> SubscriptionResponse | None:
        row = self._conn.execute(
            _SUBSCRIPTION_SELECT
            + """
            WHERE s.tenant_id = %s
            ORDER BY public.subscription_is_live_v1(s.status) DESC, s.created_at DESC
            LIMIT 1
            """,
            (self._tenant_id,),
        ).fetchone()
        return SubscriptionResponse(**row) if row else None

    def create(
        self, plan: PlanPrice, *, interval: BillingInterval, amount: Decimal
    ) -> SubscriptionResponse:
        row = one(
            self._conn.execute(
                """
                INSERT INTO public.subscriptions
                    (tenant_id, plan_id, provider, provider_subscription_id, status,
                     billing_interval, amount, currency, current_period_end)
                VALUES (%(tenant)s, %(plan)s, 'manual', %(external)s, 'active', %(interval)s,
                        %(amount)s, %(currency)s, now() + (%(period)s)::interval)
                RETURNING id
                """,
                {
                    "tenant": self._tenant_id,
                    "plan": plan.id,
                    "external": f"manual-{uuid4()}",
                    "interval": interval,
                    "amount": amount,
                    "currency": plan.currency,
                    "period": f"1 {interval}",
                },
            ).fetchone()
        )
        return self._get(row["id"])

    def change_plan(
        self,
        subscription_id: UUID,
        plan: PlanPrice,
        *,
        interval: BillingInterval,
        amount: Decimal,
    ) -> SubscriptionResponse:
        self._conn.execute(
            """
            UPDATE public.subscriptions
            SET plan_id = %s, billing_interval = %s, amount = %s, currency = %s
            WHERE tenant_id = %s AND id = %s
            """,
            (plan.id, interval, amount, plan.currency, self._tenant_id, subscription_id),
        )
        return self._get(subscription_id)

    def cancel(self, subscription_id: UUID) -> SubscriptionResponse:
        self._conn.execute(
            """
            UPDATE public.subscriptions SET status = 'canceled', canceled_at = now()
            WHERE tenant_id = %s AND id = %s AND status <> 'canceled'
            """,
            (self._tenant_id, subscription_id),
        )
        return self._get(subscription_id)

    def apply_provider_change(
        self,
        subscription_id: UUID,
        *,
        provider: WebhookProvider,
        change: SubscriptionChange,
        occurred_at: datetime | None,
    ) -> bool:
        """Apply a provider's change unless the subscription is canceled (final) or already
        saw a newer event from the provider; True when it was applied."""
        row = self._conn.execute(
            """
            UPDATE public.subscriptions
            SET provider = %(provider)s,
                provider_subscription_id = coalesce(%(subscription)s, provider_subscription_id),
                provider_customer_id = coalesce(%(customer)s, provider_customer_id),
                status = coalesce(%(status)s, status),
                canceled_at = CASE WHEN %(status)s = 'canceled' THEN now() ELSE canceled_at END,
                provider_updated_at = greatest(provider_updated_at, %(at)s)
            WHERE tenant_id = %(tenant)s AND id = %(id)s
              AND status <> 'canceled'
              AND (%(at)s::timestamptz IS NULL OR provider_updated_at IS NULL
                   OR provider_updated_at <= %(at)s)
            RETURNING id
            """,
            {
                "provider": provider,
                "subscription": change.provider_subscription_id,
                "customer": change.provider_customer_id,
                "status": change.status,
                "at": occurred_at,
                "tenant": self._tenant_id,
                "id": subscription_id,
            },
        ).fetchone()
        return row is not None

    def _get(self, subscription_id: UUID) -> SubscriptionResponse:
        row = self._conn.execute(
            _SUBSCRIPTION_SELECT + " WHERE s.tenant_id = %s AND s.id = %s",
            (self._tenant_id, subscription_id),
        ).fetchone()
        return SubscriptionResponse(**one(row))
