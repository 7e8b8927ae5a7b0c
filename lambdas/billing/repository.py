from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from psycopg.types.json import Jsonb

from lambdas.billing.models import (
    BillingInterval,
    CommercialRequestIn,
    CommercialRequestResponse,
    PaymentEventResponse,
    PaymentProvider,
    PlanPrice,
    SubscriptionResponse,
    SubscriptionStatus,
    TrialResponse,
)
from lambdas.shared.db import Connection, UnitOfWork
from lambdas.shared.secrets import get_json_secret


def _one(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        raise LookupError("the statement returned no row")
    return row


_SUBSCRIPTION_SELECT = """
    SELECT s.id, s.plan_id, p.slug AS plan_slug, p.name AS plan_name, s.status, s.provider,
           s.billing_interval, s.amount, s.currency, s.current_period_start,
           s.current_period_end, s.canceled_at
    FROM public.subscriptions AS s
    JOIN public.subscription_plans AS p ON p.id = s.plan_id
"""


class CatalogRepository:
    """What billing needs from the global catalog."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def plan_price(self, plan_id: UUID) -> PlanPrice | None:
        row = self._conn.execute(
            """
            SELECT id, slug, price_monthly, price_yearly, currency
            FROM public.subscription_plans WHERE id = %s AND is_active
            """,
            (plan_id,),
        ).fetchone()
        return PlanPrice(**row) if row else None

    def agent_exists(self, agent_id: UUID) -> bool:
        row = self._conn.execute(
            """
            SELECT 1 FROM alquimista_platform.agents WHERE id = %s AND status <> 'retired'
            """,
            (agent_id,),
        ).fetchone()
        return row is not None

    def subnucleo_exists(self, subnucleo_id: UUID) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM public.subnucleos WHERE id = %s AND is_active", (subnucleo_id,)
        ).fetchone()
        return row is not None


class SubscriptionRepository:
    """The tenant's subscription (provider view) and plan history; filters by tenant."""

    def __init__(self, conn: Connection, tenant_id: UUID | None) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def live(self) -> SubscriptionResponse | None:
        """The subscription that is active, past due or trialing, locked for update."""
        row = self._conn.execute(
            _SUBSCRIPTION_SELECT
            + """
            WHERE s.tenant_id = %s AND s.status IN ('active', 'past_due', 'trialing')
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
            ORDER BY (s.status IN ('active', 'past_due', 'trialing')) DESC, s.created_at DESC
            LIMIT 1
            """,
            (self._tenant_id,),
        ).fetchone()
        return SubscriptionResponse(**row) if row else None

    def find_by_provider_id(
        self, provider: PaymentProvider, provider_subscription_id: str
    ) -> UUID | None:
        row = self._conn.execute(
            """
            SELECT id FROM public.subscriptions
            WHERE tenant_id = %s AND provider = %s AND provider_subscription_id = %s
            FOR UPDATE
            """,
            (self._tenant_id, provider, provider_subscription_id),
        ).fetchone()
        return row["id"] if row else None

    def create(
        self, plan: PlanPrice, *, interval: BillingInterval, amount: Decimal
    ) -> SubscriptionResponse:
        row = _one(
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
        self._start_plan_period(plan.id)
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
        self._start_plan_period(plan.id)
        return self._get(subscription_id)

    def set_status(self, subscription_id: UUID, status: SubscriptionStatus) -> None:
        self._conn.execute(
            """
            UPDATE public.subscriptions
            SET status = %(status)s,
                canceled_at = CASE WHEN %(status)s = 'canceled' THEN now() ELSE canceled_at END
            WHERE tenant_id = %(tenant)s AND id = %(id)s AND status <> %(status)s
              AND status <> 'canceled'
            """,
            {"status": status, "tenant": self._tenant_id, "id": subscription_id},
        )
        if status == "canceled":
            self._end_plan_period()

    def get(self, subscription_id: UUID) -> SubscriptionResponse:
        return self._get(subscription_id)

    def _get(self, subscription_id: UUID) -> SubscriptionResponse:
        row = self._conn.execute(
            _SUBSCRIPTION_SELECT + " WHERE s.tenant_id = %s AND s.id = %s",
            (self._tenant_id, subscription_id),
        ).fetchone()
        return SubscriptionResponse(**_one(row))

    def _end_plan_period(self) -> None:
        self._conn.execute(
            """
            UPDATE public.tenant_subscriptions SET status = 'ended', ended_at = now()
            WHERE tenant_id = %s AND status = 'active'
            """,
            (self._tenant_id,),
        )

    def _start_plan_period(self, plan_id: UUID) -> None:
        self._end_plan_period()
        self._conn.execute(
            "INSERT INTO public.tenant_subscriptions (tenant_id, plan_id) VALUES (%s, %s)",
            (self._tenant_id, plan_id),
        )


_TRIAL_SELECT = """
    SELECT id, agent_id, subnucleo_id,
           CASE WHEN status = 'active' AND (expires_at <= now() OR usage_count >= max_usage)
                THEN 'expired' ELSE status END AS status,
           started_at, expires_at, max_usage, usage_count,
           greatest(max_usage - usage_count, 0) AS remaining_usage
    FROM public.trials
"""


class TrialRepository:
    """The tenant's trials; every statement filters by the tenant."""

    def __init__(self, conn: Connection, tenant_id: UUID | None) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def list_all(self) -> list[TrialResponse]:
        rows = self._conn.execute(
            _TRIAL_SELECT + " WHERE tenant_id = %s ORDER BY started_at DESC, id",
            (self._tenant_id,),
        ).fetchall()
        return [TrialResponse(**row) for row in rows]

    def get(self, trial_id: UUID) -> TrialResponse | None:
        row = self._conn.execute(
            _TRIAL_SELECT + " WHERE tenant_id = %s AND id = %s", (self._tenant_id, trial_id)
        ).fetchone()
        return TrialResponse(**row) if row else None

    def exists_for(self, *, agent_id: UUID | None, subnucleo_id: UUID | None) -> bool:
        row = self._conn.execute(
            """
            SELECT 1 FROM public.trials
            WHERE tenant_id = %s
              AND (agent_id = %s OR subnucleo_id = %s)
            """,
            (self._tenant_id, agent_id, subnucleo_id),
        ).fetchone()
        return row is not None

    def create(
        self,
        *,
        user_id: UUID,
        agent_id: UUID | None,
        subnucleo_id: UUID | None,
        expires_at: datetime,
        max_usage: int,
    ) -> TrialResponse:
        row = _one(
            self._conn.execute(
                """
                INSERT INTO public.trials
                    (tenant_id, user_id, agent_id, subnucleo_id, expires_at, max_usage)
                VALUES (%s, %s, %s, %s, %s, %s)
                RETURNING id
                """,
                (self._tenant_id, user_id, agent_id, subnucleo_id, expires_at, max_usage),
            ).fetchone()
        )
        return TrialResponse(
            **_one(
                self._conn.execute(
                    _TRIAL_SELECT + " WHERE tenant_id = %s AND id = %s",
                    (self._tenant_id, row["id"]),
                ).fetchone()
            )
        )

    def record_use(self, trial_id: UUID) -> TrialResponse | None:
        """Count one use of a usable trial; None when the trial is missing or used up."""
        row = self._conn.execute(
            """
            UPDATE public.trials SET usage_count = usage_count + 1
            WHERE tenant_id = %s AND id = %s AND status = 'active'
              AND expires_at > now() AND usage_count < max_usage
            RETURNING id
            """,
            (self._tenant_id, trial_id),
        ).fetchone()
        return self.get(trial_id) if row else None

    def expire_all(self) -> int:
        """Run ``public.expire_trials()`` across every tenant; returns how many expired."""
        row = _one(self._conn.execute("SELECT public.expire_trials() AS expired").fetchone())
        return int(row["expired"])


class CommercialRequestRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(
        self, request: CommercialRequestIn, *, source_ip_hash: str
    ) -> CommercialRequestResponse:
        row = self._conn.execute(
            """
            INSERT INTO public.commercial_requests
                (company_name, contact_name, email, phone, tax_id, plan_id, subnucleo_ids,
                 message, consent_given, consent_at, source, metadata)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true, now(), 'api', %s)
            RETURNING id, status, created_at
            """,
            (
                request.company_name,
                request.contact_name,
                request.email,
                request.phone,
                request.tax_id,
                request.plan_id,
                list(request.subnucleo_ids),
                request.message,
                Jsonb({"source_ip_sha256": source_ip_hash}),
            ),
        ).fetchone()
        return CommercialRequestResponse(**_one(row))


class RateLimitRepository:
    """Fixed-window counters for public endpoints (``public.public_rate_limits``)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def hit(self, bucket: str, subject: str, *, window_s: int) -> int:
        """Count one request in the current window; returns the window's count so far.

        Ended windows of every subject in the bucket go first, so the table holds at most the
        subjects seen in the last window, not every client that ever called once."""
        self._conn.execute(
            """
            DELETE FROM public.public_rate_limits
            WHERE bucket = %s AND window_start < now() - make_interval(secs => %s)
            """,
            (bucket, window_s),
        )
        row = self._conn.execute(
            """
            INSERT INTO public.public_rate_limits (bucket, subject, window_start, window_s, count)
            VALUES (%(bucket)s, %(subject)s,
                    to_timestamp(floor(extract(epoch FROM now()) / %(window)s) * %(window)s),
                    %(window)s, 1)
            ON CONFLICT (bucket, subject, window_start)
            DO UPDATE SET count = public.public_rate_limits.count + 1
            RETURNING count
            """,
            {"bucket": bucket, "subject": subject, "window": window_s},
        ).fetchone()
        return int(_one(row)["count"])


class PaymentEventRepository:
    """Provider events: written without a tenant (the table is not tenant-owned); listed per
    tenant through the tenant's subscriptions."""

    def __init__(self, conn: Connection, tenant_id: UUID | None) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def record_received(
        self,
        *,
        provider: PaymentProvider,
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
        self._conn.execute(
            """
            UPDATE public.payment_events
            SET status = %s, subscription_id = %s, error = %s, processed_at = now()
            WHERE id = %s
            """,
            (status, subscription_id, error, event_id),
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


class BillingUnitOfWork(UnitOfWork):
    catalog: CatalogRepository
    subscriptions: SubscriptionRepository
    trials: TrialRepository
    commercial_requests: CommercialRequestRepository
    rate_limits: RateLimitRepository
    payment_events: PaymentEventRepository

    def _on_enter(self) -> None:
        self.catalog = CatalogRepository(self.conn)
        self.subscriptions = SubscriptionRepository(self.conn, self.tenant_id)
        self.trials = TrialRepository(self.conn, self.tenant_id)
        self.commercial_requests = CommercialRequestRepository(self.conn)
        self.rate_limits = RateLimitRepository(self.conn)
        self.payment_events = PaymentEventRepository(self.conn, self.tenant_id)


def webhook_signing_secret(secret_id: str, *, max_age: int) -> str:
    """The payment provider's signing secret (Secrets Manager, cached per environment)."""
    value = get_json_secret(secret_id, max_age=max_age).get("signing_secret")
    if not isinstance(value, str) or not value:
        raise TypeError(f"secret {secret_id} has no signing_secret")
    return value
