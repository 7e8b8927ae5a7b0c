"""What billing's services need from storage, per sub-domain; repositories implement them
(``lambdas/billing/repositories``) and tests fake them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from lambdas.billing.models import (
    BillingInterval,
    CommercialRequestIn,
    CommercialRequestResponse,
    PaymentEventResponse,
    PlanPrice,
    SubscriptionResponse,
    TrialResponse,
    WebhookProvider,
)
from lambdas.billing.providers import SubscriptionChange
from lambdas.shared.scope import AuditLog, ChangeRecorder


class CatalogReader(Protocol):
    def plan_price(self, plan_id: UUID) -> PlanPrice | None: ...

    def agent_exists(self, agent_id: UUID) -> bool: ...

    def subnucleo_exists(self, subnucleo_id: UUID) -> bool: ...


class SubscriptionStore(Protocol):
    def live(self) -> SubscriptionResponse | None:
        """The tenant's live subscription, locked for update."""
        ...

    def latest(self) -> SubscriptionResponse | None: ...

    def create(
        self, plan: PlanPrice, *, interval: BillingInterval, amount: Decimal
    ) -> SubscriptionResponse: ...

    def change_plan(
        self,
        subscription_id: UUID,
        plan: PlanPrice,
        *,
        interval: BillingInterval,
        amount: Decimal,
    ) -> SubscriptionResponse: ...

    def cancel(self, subscription_id: UUID) -> SubscriptionResponse: ...

    def apply_provider_change(
        self,
        subscription_id: UUID,
        *,
        provider: WebhookProvider,
        change: SubscriptionChange,
        occurred_at: datetime | None,
    ) -> bool:
        """Apply a provider's change unless the subscription is canceled or already saw a
        newer event from the provider; True when it was applied."""
        ...


class TrialStore(Protocol):
    def list_all(self) -> list[TrialResponse]: ...

    def get(self, trial_id: UUID) -> TrialResponse | None: ...

    def exists_for(self, *, agent_id: UUID | None, subnucleo_id: UUID | None) -> bool: ...

    def create(
        self,
        *,
        user_id: UUID,
        agent_id: UUID | None,
        subnucleo_id: UUID | None,
        expires_at: datetime,
        max_usage: int,
    ) -> TrialResponse: ...

    def record_use(self, trial_id: UUID) -> TrialResponse | None:
        """Count one use of a usable trial; None when it is missing or not usable."""
        ...

    def expire_all(self) -> int: ...


class CommercialRequestStore(Protocol):
    def create(
        self, request: CommercialRequestIn, *, source_ip_hash: str
    ) -> CommercialRequestResponse: ...


class RateLimiter(Protocol):
    def hit(self, bucket: str, subject: str, *, window_s: int) -> int: ...


@dataclass(frozen=True)
class LocatedSubscription:
    tenant_id: UUID
    subscription_id: UUID


class PaymentEventStore(Protocol):
    def locate_subscription(
        self,
        provider: WebhookProvider,
        *,
        subscription_ref: UUID | None,
        provider_subscription_id: str | None,
        provider_customer_id: str | None,
    ) -> LocatedSubscription | None:
        """The subscription, in any tenant, that a verified provider event names."""
        ...

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
        ...

    def finish(
        self,
        event_id: UUID,
        *,
        status: str,
        subscription_id: UUID | None = None,
        error: str | None = None,
    ) -> None: ...

    def list_for_tenant(self, *, limit: int) -> list[PaymentEventResponse]: ...


class SubscriptionsUow(ChangeRecorder, Protocol):
    @property
    def catalog(self) -> CatalogReader: ...

    @property
    def subscriptions(self) -> SubscriptionStore: ...

    def commit(self) -> None: ...


class TrialsUow(ChangeRecorder, Protocol):
    @property
    def catalog(self) -> CatalogReader: ...

    @property
    def trials(self) -> TrialStore: ...

    def commit(self) -> None: ...


class CommercialRequestsUow(ChangeRecorder, Protocol):
    @property
    def commercial_requests(self) -> CommercialRequestStore: ...

    @property
    def rate_limits(self) -> RateLimiter: ...

    def commit(self) -> None: ...


class PaymentsUow(ChangeRecorder, Protocol):
    @property
    def audit(self) -> AuditLog: ...

    @property
    def subscriptions(self) -> SubscriptionStore: ...

    @property
    def payment_events(self) -> PaymentEventStore: ...

    def commit(self) -> None: ...


SubscriptionsUowFactory = Callable[[], AbstractContextManager[SubscriptionsUow]]
TrialsUowFactory = Callable[[], AbstractContextManager[TrialsUow]]
CommercialRequestsUowFactory = Callable[[], AbstractContextManager[CommercialRequestsUow]]
PaymentsUowFactory = Callable[[], AbstractContextManager[PaymentsUow]]
# A unit of work for the given tenant, or for none (tenant-owned rows invisible).
TenantPaymentsUowFactory = Callable[[UUID | None], AbstractContextManager[PaymentsUow]]
