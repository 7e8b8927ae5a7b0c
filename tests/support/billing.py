"""Fakes of billing's ports (lambdas/billing/ports.py) for service tests: they honour the
ports and record commits."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lambdas.billing.models import CommercialRequestIn, CommercialRequestResponse, PlanPrice
from lambdas.billing.ports import LocatedSubscription
from lambdas.billing.providers import SubscriptionChange
from lambdas.shared.events import validated_payload


@dataclass
class FakePaymentEvents:
    rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # (provider, provider subscription id) -> where it lives
    known: dict[tuple[str, str], LocatedSubscription] = field(default_factory=dict)
    lookups: int = 0

    def locate_subscription(
        self, provider, *, subscription_ref, provider_subscription_id, provider_customer_id
    ) -> LocatedSubscription | None:
        self.lookups += 1
        for located in self.known.values():
            if located.subscription_id == subscription_ref:
                return located
        return self.known.get((provider, provider_subscription_id or ""))

    def record_received(
        self, *, provider, provider_event_id, event_type, amount, currency, payload
    ):
        key = (provider, provider_event_id)
        if key in self.rows:
            return None
        row_id = uuid.uuid4()
        self.rows[key] = {"id": row_id, "status": "received", "type": event_type}
        return row_id

    def finish(self, event_id, *, status, subscription_id=None, error=None) -> None:
        for row in self.rows.values():
            if row["id"] == event_id:
                row.update(status=status, subscription_id=subscription_id, error=error)

    def list_for_tenant(self, *, limit):
        return []


@dataclass
class FakeSubscriptions:
    changes: dict[uuid.UUID, list[SubscriptionChange]] = field(default_factory=dict)
    canceled: set[uuid.UUID] = field(default_factory=set)
    live_one: Any = None
    created: list[Any] = field(default_factory=list)

    def apply_provider_change(self, subscription_id, *, provider, change, occurred_at) -> bool:
        if subscription_id in self.canceled:
            return False
        self.changes.setdefault(subscription_id, []).append(change)
        return True

    def live(self):
        return self.live_one

    def create(self, plan, *, interval, amount):
        self.created.append((plan.slug, interval, amount))
        return self.created[-1]


@dataclass
class FakeRateLimits:
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def hit(self, bucket: str, subject: str, *, window_s: int) -> int:
        self.counts[(bucket, subject)] = self.counts.get((bucket, subject), 0) + 1
        return self.counts[(bucket, subject)]


@dataclass
class FakeCommercialRequests:
    created: list[tuple[CommercialRequestIn, str]] = field(default_factory=list)

    def create(self, request, *, source_ip_hash):
        self.created.append((request, source_ip_hash))
        return CommercialRequestResponse(
            id=uuid.uuid4(), status="new", created_at=datetime.now(UTC)
        )


@dataclass
class FakeCatalog:
    plans: dict[uuid.UUID, PlanPrice] = field(default_factory=dict)
    agents: set[uuid.UUID] = field(default_factory=set)

    def plan_price(self, plan_id):
        return self.plans.get(plan_id)

    def agent_exists(self, agent_id) -> bool:
        return agent_id in self.agents

    def subnucleo_exists(self, subnucleo_id) -> bool:
        return False


@dataclass
class FakeTrials:
    targets: set[uuid.UUID] = field(default_factory=set)
    created: list[dict[str, Any]] = field(default_factory=list)

    def exists_for(self, *, agent_id, subnucleo_id) -> bool:
        return agent_id in self.targets or subnucleo_id in self.targets

    def create(self, **kwargs):
        self.created.append(kwargs)
        return kwargs


@dataclass
class FakeBillingUow:
    payment_events: FakePaymentEvents = field(default_factory=FakePaymentEvents)
    subscriptions: FakeSubscriptions = field(default_factory=FakeSubscriptions)
    rate_limits: FakeRateLimits = field(default_factory=FakeRateLimits)
    commercial_requests: FakeCommercialRequests = field(default_factory=FakeCommercialRequests)
    catalog: FakeCatalog = field(default_factory=FakeCatalog)
    trials: FakeTrials = field(default_factory=FakeTrials)
    commits: int = 0
    # the tenant of each unit of work opened (None: no tenant)
    tenants: list[uuid.UUID | None] = field(default_factory=list)
    # (event type, aggregate id) of each change recorded (audit row + outbox event)
    recorded: list[tuple[str, str]] = field(default_factory=list)
    # (action, outcome) of each audit row appended without an event (refused attempts)
    appended: list[tuple[str, str]] = field(default_factory=list)

    def commit(self) -> None:
        self.commits += 1

    def record(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> None:
        # checked against the catalog as the real unit of work does
        validated_payload(event_type, version, aggregate_type, payload)
        self.recorded.append((event_type, aggregate_id))

    @property
    def audit(self) -> FakeBillingUow:
        return self

    def append(
        self,
        action: str,
        *,
        resource_type: str,
        resource_id: str | None = None,
        outcome: str = "success",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """The audit log's port: what the service appended directly (denials)."""
        self.appended.append((action, outcome))

    def factory(self) -> Callable[[], AbstractContextManager[Any]]:
        @contextmanager
        def open_uow() -> Iterator[FakeBillingUow]:
            yield self

        return open_uow

    def tenant_factory(self) -> Callable[[uuid.UUID | None], AbstractContextManager[Any]]:
        @contextmanager
        def open_uow(tenant_id: uuid.UUID | None) -> Iterator[FakeBillingUow]:
            self.tenants.append(tenant_id)
            yield self

        return open_uow
