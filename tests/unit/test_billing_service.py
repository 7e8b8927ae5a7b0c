"""Billing services with fakes of their ports (tests/support/billing.py): no I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from lambdas.billing.models import (
    CommercialRequestIn,
    PlanPrice,
    StartTrialRequest,
    SubscribeRequest,
)
from lambdas.billing.ports import LocatedSubscription
from lambdas.billing.providers import InvalidSignature, WebhookDelivery
from lambdas.billing.services import commercial_requests, payments, subscriptions, trials
from lambdas.shared.constants import COMMERCIAL_REQUESTS_PER_IP
from scripts.devstack.webhook_events import (
    SignedDelivery,
    mercadopago_delivery,
    mercadopago_notification,
    stripe_delivery,
    stripe_event,
)
from tests.support.billing import FakeBillingUow

STRIPE_SECRET = "whsec_unit_test"
MP_SECRET = "mp-unit-test"


@pytest.fixture
def uow() -> FakeBillingUow:
    return FakeBillingUow()


def _as_delivery(signed: SignedDelivery) -> WebhookDelivery:
    _, _, query = signed.path.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&") if part)
    return WebhookDelivery(body=signed.body, headers=signed.headers, query=params)


def _receive(
    uow: FakeBillingUow,
    signed: SignedDelivery,
    *,
    provider: str = "stripe",
    secret: str = STRIPE_SECRET,
):
    return payments.receive_payment_webhook(
        uow.tenant_factory(),
        provider=provider,  # type: ignore[arg-type]
        delivery=_as_delivery(signed),
        signing_secret=secret,
        now=datetime.now(UTC).timestamp(),
    )


def _known(uow: FakeBillingUow, provider_subscription: str = "sub_1") -> LocatedSubscription:
    located = LocatedSubscription(tenant_id=uuid.uuid4(), subscription_id=uuid.uuid4())
    uow.payment_events.known[("stripe", provider_subscription)] = located
    return located


# Webhooks


def test_a_webhook_applies_its_change_in_the_tenant_transaction_of_its_subscription(
    uow: FakeBillingUow,
) -> None:
    located = _known(uow)
    event = stripe_event("invoice.payment_failed", subscription="sub_1", customer="cus_1")

    receipt = _receive(uow, stripe_delivery(STRIPE_SECRET, event))

    assert receipt.status == "processed"
    # the lookup runs without a tenant; the write in the located tenant's transaction
    assert uow.tenants == [None, located.tenant_id]
    [change] = uow.subscriptions.changes[located.subscription_id]
    assert change.status == "past_due"
    row = uow.payment_events.rows[("stripe", event["id"])]
    assert (row["status"], row["subscription_id"]) == ("processed", located.subscription_id)
    assert uow.commits == 1


def test_a_redelivered_event_changes_nothing(uow: FakeBillingUow) -> None:
    located = _known(uow)
    delivery = stripe_delivery(
        STRIPE_SECRET, stripe_event("invoice.paid", subscription="sub_1", customer="cus_1")
    )
    _receive(uow, delivery)

    again = _receive(uow, delivery)

    assert again.status == "duplicate"
    assert len(uow.subscriptions.changes[located.subscription_id]) == 1
    assert uow.commits == 1


def test_a_forged_webhook_only_leaves_a_denial_in_the_platform_chain(
    uow: FakeBillingUow,
) -> None:
    event = stripe_event("invoice.paid", subscription="sub_1", customer="cus_1")

    with pytest.raises(InvalidSignature):
        _receive(uow, stripe_delivery("whsec_forged", event))

    assert uow.tenants == [None]  # no tenant's unit of work: the platform's, for the denial
    assert uow.appended == [("webhook.denied", "denied")]
    assert uow.payment_events.rows == {}
    assert uow.recorded == []


def test_a_change_the_subscription_refuses_is_recorded_as_ignored(uow: FakeBillingUow) -> None:
    located = _known(uow)
    uow.subscriptions.canceled.add(located.subscription_id)
    event = stripe_event("invoice.paid", subscription="sub_1", customer="cus_1")

    receipt = _receive(uow, stripe_delivery(STRIPE_SECRET, event))

    assert receipt.status == "ignored"
    assert uow.payment_events.rows[("stripe", event["id"])]["error"]


def test_a_checkout_names_our_subscription_and_links_the_providers_ids(
    uow: FakeBillingUow,
) -> None:
    located = _known(uow, "sub_other")
    event = stripe_event(
        "checkout.session.completed",
        subscription="sub_new",
        customer="cus_new",
        client_reference=str(located.subscription_id),
    )

    receipt = _receive(uow, stripe_delivery(STRIPE_SECRET, event))

    assert receipt.status == "processed"
    [change] = uow.subscriptions.changes[located.subscription_id]
    assert (change.status, change.provider_subscription_id, change.provider_customer_id) == (
        "active",
        "sub_new",
        "cus_new",
    )


def test_a_mercadopago_notification_is_recorded_and_changes_nothing(uow: FakeBillingUow) -> None:
    located = LocatedSubscription(uuid.uuid4(), uuid.uuid4())
    uow.payment_events.known[("mercadopago", "pre_1")] = located
    notification = mercadopago_notification("subscription_preapproval", data_id="pre_1")

    receipt = _receive(
        uow, mercadopago_delivery(MP_SECRET, notification), provider="mercadopago", secret=MP_SECRET
    )

    assert receipt.status == "received"
    assert uow.subscriptions.changes == {}
    row = uow.payment_events.rows[("mercadopago", str(notification["id"]))]
    assert row["subscription_id"] == located.subscription_id


def test_an_event_naming_no_subscription_skips_the_lookup(uow: FakeBillingUow) -> None:
    notification = mercadopago_notification("payment", data_id="123")

    receipt = _receive(
        uow, mercadopago_delivery(MP_SECRET, notification), provider="mercadopago", secret=MP_SECRET
    )

    assert receipt.status == "received"
    assert uow.payment_events.lookups == 0
    assert uow.tenants == [None]


# Commercial requests


def _contact() -> CommercialRequestIn:
    return CommercialRequestIn(
        company_name="Empresa", contact_name="Ana", email="ana@example.com", consent_given=True
    )


def test_commercial_requests_stop_at_the_limit_and_keep_no_raw_ip(uow: FakeBillingUow) -> None:
    for _ in range(COMMERCIAL_REQUESTS_PER_IP):
        commercial_requests.submit_commercial_request(
            uow.factory(), _contact(), client_ip="203.0.113.1"
        )

    with pytest.raises(commercial_requests.CommercialRequestsRateLimited):
        commercial_requests.submit_commercial_request(
            uow.factory(), _contact(), client_ip="203.0.113.1"
        )
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

    with pytest.raises(subscriptions.IntervalNotOffered):
        subscriptions.subscribe(
            uow.factory(), SubscribeRequest(plan_id=plan.id, billing_interval="year")
        )
    assert uow.subscriptions.created == []


def test_a_second_trial_of_the_same_product_is_refused(uow: FakeBillingUow) -> None:
    agent = uuid.uuid4()
    uow.catalog.agents.add(agent)
    uow.trials.targets.add(agent)

    with pytest.raises(trials.TrialAlreadyUsed):
        trials.start_trial(
            uow.factory(),
            StartTrialRequest(agent_id=agent),
            user_id=uuid.uuid4(),
            now=datetime.now(UTC),
        )
    assert uow.trials.created == []
