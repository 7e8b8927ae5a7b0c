"""The tenant's subscription: subscribe, change plan, cancel."""

from __future__ import annotations

from decimal import Decimal

from lambdas.billing.models import (
    BillingInterval,
    ChangePlanRequest,
    CurrentSubscriptionResponse,
    PlanPrice,
    SubscribeRequest,
    SubscriptionResponse,
)
from lambdas.billing.ports import SubscriptionsUowFactory
from lambdas.plans.service import PlanNotFound
from lambdas.shared.errors import Conflict, NotFound, ValidationFailed


class NoActiveSubscription(NotFound):
    code = "no_active_subscription"


class AlreadySubscribed(Conflict):
    code = "already_subscribed"
    constraints = ("subscriptions_one_live_per_tenant_key", "tenant_subscriptions_current_key")
    constraint_message = "the tenant already has a subscription; change its plan"


class IntervalNotOffered(ValidationFailed):
    code = "interval_not_offered"


def _price(plan: PlanPrice, interval: BillingInterval) -> Decimal:
    price = plan.price_monthly if interval == "month" else plan.price_yearly
    if price is None:
        raise IntervalNotOffered(f"plan {plan.slug} is not offered with a yearly price")
    return price


def current_subscription(uow_factory: SubscriptionsUowFactory) -> CurrentSubscriptionResponse:
    """The tenant's live subscription, else its most recent one, else none."""
    with uow_factory() as uow:
        return CurrentSubscriptionResponse(subscription=uow.subscriptions.latest())


def subscribe(
    uow_factory: SubscriptionsUowFactory, request: SubscribeRequest
) -> SubscriptionResponse:
    """Start a subscription to a plan; AlreadySubscribed when one is live (change plan then),
    also when a concurrent request wins the race on the one-live-subscription index."""
    with uow_factory() as uow:
        plan = uow.catalog.plan_price(request.plan_id)
        if plan is None:
            raise PlanNotFound("plan not found")
        amount = _price(plan, request.billing_interval)
        if uow.subscriptions.live() is not None:
            raise AlreadySubscribed(AlreadySubscribed.constraint_message)
        subscription = uow.subscriptions.create(
            plan, interval=request.billing_interval, amount=amount
        )
        uow.record(
            "subscription.created",
            aggregate_type="subscription",
            aggregate_id=str(subscription.id),
            payload={
                "subscription_id": subscription.id,
                "plan_id": subscription.plan_id,
                "billing_interval": subscription.billing_interval,
                "status": subscription.status,
            },
        )
        uow.commit()
        return subscription


def change_plan(
    uow_factory: SubscriptionsUowFactory, request: ChangePlanRequest
) -> SubscriptionResponse:
    """Move the live subscription to another plan or interval; the same plan changes nothing."""
    with uow_factory() as uow:
        current = uow.subscriptions.live()
        if current is None:
            raise NoActiveSubscription("the tenant has no active subscription")
        plan = uow.catalog.plan_price(request.plan_id)
        if plan is None:
            raise PlanNotFound("plan not found")
        interval = request.billing_interval or current.billing_interval
        amount = _price(plan, interval)
        if current.plan_id == plan.id and current.billing_interval == interval:
            return current
        changed = uow.subscriptions.change_plan(current.id, plan, interval=interval, amount=amount)
        uow.record(
            "subscription.plan_changed",
            aggregate_type="subscription",
            aggregate_id=str(changed.id),
            payload={
                "subscription_id": changed.id,
                "from_plan_id": current.plan_id,
                "to_plan_id": changed.plan_id,
                "billing_interval": changed.billing_interval,
            },
        )
        uow.commit()
        return changed


def cancel_subscription(uow_factory: SubscriptionsUowFactory) -> SubscriptionResponse:
    """Cancel the live subscription now."""
    with uow_factory() as uow:
        current = uow.subscriptions.live()
        if current is None:
            raise NoActiveSubscription("the tenant has no active subscription")
        canceled = uow.subscriptions.cancel(current.id)
        uow.record(
            "subscription.canceled",
            aggregate_type="subscription",
            aggregate_id=str(canceled.id),
            payload={
                "subscription_id": canceled.id,
                "plan_id": canceled.plan_id,
                "canceled_at": canceled.canceled_at,
            },
        )
        uow.commit()
        return canceled
