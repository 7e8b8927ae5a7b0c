from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from lambdas.billing import service
from lambdas.billing.models import (
    CommercialRequestIn,
    CommercialRequestResponse,
    PlanPrice,
    StartTrialRequest,
    SubscribeRequest,
)
from lambdas.shared.constants import COMMERCIAL_REQUESTS_PER_IP, WEBHOOK_TOLERANCE_S

SECRET = "test-signing-secret"
NOW = 1_800_000_000.0


# Signatures


def test_a_fresh_correct_signature_is_accepted() -> None:
    body = b'{"id": "evt_1"}'
    ts = str(int(NOW))

    service.verify_signature(
        SECRET, timestamp=ts, signature=service.sign(SECRET, ts, body), body=body, now=NOW
    )


def test_one_of_several_signatures_may_match_during_rotation() -> None:
    body = b"{}"
    ts = str(int(NOW))
    header = f"{service.sign('old', ts, body)}, {service.sign(SECRET, ts, body)}"

    service.verify_signature(SECRET, timestamp=ts, signature=header, body=body, now=NOW)


@pytest.mark.parametrize("skew", [WEBHOOK_TOLERANCE_S + 1, -(WEBHOOK_TOLERANCE_S + 1)])
def test_a_timestamp_outside_the_tolerance_is_refused(skew: int) -> None:
    body = b"{}"
    ts = str(int(NOW) + skew)

    with pytest.raises(service.InvalidSignature):
        service.verify_signature(
            SECRET, timestamp=ts, signature=service.sign(SECRET, ts, body), body=body, now=NOW
        )


def test_the_timestamp_is_part_of_what_is_signed() -> None:
    body = b"{}"
    signed_at = str(int(NOW) - 10)

    with pytest.raises(service.InvalidSignature):
        service.verify_signature(
            SECRET,
            timestamp=str(int(NOW)),
            signature=service.sign(SECRET, signed_at, body),
            body=body,
            now=NOW,
        )


# Fakes


@dataclass
class FakePaymentEvents:
    rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def record_received(
        self, *, provider, provider_event_id, event_type, amount, currency, payload
    ):
        key = (provider, provider_event_id)
        if key in self.rows:
            return None
        row_id = uuid.uuid4()
        self.rows[key] = {"id": row_id, "status": "received"}
        return row_id

    def finish(self, event_id, *, status, subscription_id=None, error=None) -> None:
        for row in self.rows.values():
            if row["id"] == event_id:
                row.update(status=status, subscription_id=subscription_id, error=error)

    def list_for_tenant(self, *, limit):
        return []


@dataclass
class FakeSubscriptions:
    by_provider_id: dict[str, uuid.UUID] = field(default_factory=dict)
    statuses: dict[uuid.UUID, str] = field(default_factory=dict)
    live_one: Any = None
    created: list[Any] = field(default_factory=list)

    def find_by_provider_id(self, provider, provider_subscription_id):
        return self.by_provider_id.get(provider_subscription_id)

    def set_status(self, subscription_id, status) -> None:
        self.statuses[subscription_id] = status

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
    tenants: list[uuid.UUID | None] = field(default_factory=list)

    def commit(self) -> None:
        self.commits += 1


@pytest.fixture
def uow() -> FakeBillingUow:
    return FakeBillingUow()


def _factory(uow: FakeBillingUow):
    @contextmanager
    def factory() -> Iterator[FakeBillingUow]:
        yield uow

    return factory


def _tenant_factory(uow: FakeBillingUow):
    @contextmanager
    def factory(tenant_id) -> Iterator[FakeBillingUow]:
        uow.tenants.append(tenant_id)
        yield uow

    return factory


def _no_dedupe(key, work):
    return work()


def _receive(uow: FakeBillingUow, payload: dict[str, Any], *, secret: str = SECRET):
    body = json.dumps(payload).encode()
    ts = str(int(NOW))
    return service.receive_payment_webhook(
        _tenant_factory(uow),
        provider="stripe",
        body=body,
        timestamp=ts,
        signature=service.sign(secret, ts, body),
        signing_secret=SECRET,
        now=NOW,
        deduplicate=_no_dedupe,
    )


# Webhooks


def test_a_webhook_applies_its_status_in_the_tenant_transaction(uow: FakeBillingUow) -> None:
    tenant, subscription = uuid.uuid4(), uuid.uuid4()
    uow.subscriptions.by_provider_id["sub_1"] = subscription
    payload = {
        "id": "evt_1",
        "type": "payment.failed",
        "data": {"tenant_id": str(tenant), "subscription_id": "sub_1"},
    }

    receipt = _receive(uow, payload)

    assert receipt.status == "processed"
    assert uow.tenants == [tenant]
    assert uow.subscriptions.statuses == {subscription: "past_due"}
    assert uow.payment_events.rows[("stripe", "evt_1")]["status"] == "processed"
    assert uow.commits == 1


def test_a_redelivered_event_changes_nothing(uow: FakeBillingUow) -> None:
    uow.subscriptions.by_provider_id["sub_1"] = uuid.uuid4()
    payload = {
        "id": "evt_1",
        "type": "payment.failed",
        "data": {"tenant_id": str(uuid.uuid4()), "subscription_id": "sub_1"},
    }
    _receive(uow, payload)
    uow.subscriptions.statuses.clear()

    receipt = _receive(uow, payload)

    assert receipt.status == "duplicate"
    assert uow.subscriptions.statuses == {}
    assert uow.commits == 1


def test_a_forged_webhook_never_opens_a_unit_of_work(uow: FakeBillingUow) -> None:
    with pytest.raises(service.InvalidSignature):
        _receive(uow, {"id": "evt_1", "type": "payment.failed"}, secret="forged")

    assert uow.tenants == []
    assert uow.payment_events.rows == {}


def test_the_deduplicator_is_keyed_by_provider_and_event_id(uow: FakeBillingUow) -> None:
    keys: list[str] = []

    def remember(key, work):
        keys.append(key)
        return work()

    body = json.dumps({"id": "evt_9", "type": "x"}).encode()
    ts = str(int(NOW))

    service.receive_payment_webhook(
        _tenant_factory(uow),
        provider="pagarme",
        body=body,
        timestamp=ts,
        signature=service.sign(SECRET, ts, body),
        signing_secret=SECRET,
        now=NOW,
        deduplicate=remember,
    )

    assert keys == ["pagarme:evt_9"]


# Commercial requests


def _contact() -> CommercialRequestIn:
    return CommercialRequestIn(
        company_name="Empresa", contact_name="Ana", email="ana@example.com", consent_given=True
    )


def test_commercial_requests_stop_at_the_limit_and_keep_no_raw_ip(uow: FakeBillingUow) -> None:
    for _ in range(COMMERCIAL_REQUESTS_PER_IP):
        service.submit_commercial_request(_factory(uow), _contact(), client_ip="203.0.113.1")

    with pytest.raises(service.CommercialRequestsRateLimited):
        service.submit_commercial_request(_factory(uow), _contact(), client_ip="203.0.113.1")
    assert len(uow.commercial_requests.created) == COMMERCIAL_REQUESTS_PER_IP
    assert all("203.0.113.1" not in digest for _, digest in uow.commercial_requests.created)


# Subscriptions and trials


def test_a_yearly_subscription_to_a_plan_without_a_yearly_price_is_refused(uow) -> None:
    plan = PlanPrice(
        id=uuid.uuid4(),
        slug="monthly-only",
        price_monthly=Decimal(10),
        price_yearly=None,
        currency="BRL",
    )
    uow.catalog.plans[plan.id] = plan

    with pytest.raises(service.IntervalNotOffered):
        service.subscribe(_factory(uow), SubscribeRequest(plan_id=plan.id, billing_interval="year"))
    assert uow.subscriptions.created == []


def test_a_second_trial_of_the_same_product_is_refused(uow: FakeBillingUow) -> None:
    agent = uuid.uuid4()
    uow.catalog.agents.add(agent)
    uow.trials.targets.add(agent)

    with pytest.raises(service.TrialAlreadyUsed):
        service.start_trial(
            _factory(uow),
            StartTrialRequest(agent_id=agent),
            user_id=uuid.uuid4(),
            now=datetime.now(UTC),
        )
    assert uow.trials.created == []
