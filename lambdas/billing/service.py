"""Billing use cases: subscriptions, trials, sales contact requests and payment webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Protocol
from uuid import UUID

from pydantic import ValidationError

from lambdas.billing.models import (
    BillingInterval,
    ChangePlanRequest,
    CommercialRequestIn,
    CommercialRequestResponse,
    CurrentSubscriptionResponse,
    PaymentEventIn,
    PaymentEventList,
    PaymentEventResponse,
    PaymentProvider,
    PlanPrice,
    StartTrialRequest,
    SubscribeRequest,
    SubscriptionResponse,
    SubscriptionStatus,
    TrialList,
    TrialResponse,
    WebhookReceipt,
)
from lambdas.plans.service import PlanNotFound
from lambdas.shared.constants import (
    COMMERCIAL_REQUESTS_PER_IP,
    COMMERCIAL_REQUESTS_WINDOW_S,
    TRIAL_DURATION_DAYS,
    TRIAL_MAX_USAGE,
    WEBHOOK_TOLERANCE_S,
)
from lambdas.shared.errors import (
    Conflict,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)

# What a provider event means for the subscription it names.
STATUS_BY_EVENT_TYPE: Final[dict[str, SubscriptionStatus]] = {
    "payment.succeeded": "active",
    "payment.failed": "past_due",
    "subscription.canceled": "canceled",
}
SIGNATURE_SCHEME: Final = "v1"
COMMERCIAL_REQUESTS_BUCKET: Final = "commercial_requests"


class NoActiveSubscription(NotFound):
    code = "no_active_subscription"


class AlreadySubscribed(Conflict):
    code = "already_subscribed"


class IntervalNotOffered(ValidationFailed):
    code = "interval_not_offered"


class TrialTargetNotFound(NotFound):
    code = "trial_target_not_found"


class TrialAlreadyUsed(Conflict):
    code = "trial_already_used"


class TrialNotFound(NotFound):
    code = "trial_not_found"


class TrialUsedUp(Conflict):
    code = "trial_not_active"


class InvalidSignature(Unauthorized):
    code = "invalid_signature"


class CommercialRequestsRateLimited(TooManyRequests):
    pass


# Ports


class CatalogReader(Protocol):
    def plan_price(self, plan_id: UUID) -> PlanPrice | None: ...

    def agent_exists(self, agent_id: UUID) -> bool: ...

    def subnucleo_exists(self, subnucleo_id: UUID) -> bool: ...


class SubscriptionStore(Protocol):
    def live(self) -> SubscriptionResponse | None: ...

    def latest(self) -> SubscriptionResponse | None: ...

    def find_by_provider_id(
        self, provider: PaymentProvider, provider_subscription_id: str
    ) -> UUID | None: ...

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

    def set_status(self, subscription_id: UUID, status: SubscriptionStatus) -> None: ...

    def get(self, subscription_id: UUID) -> SubscriptionResponse: ...


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

    def record_use(self, trial_id: UUID) -> TrialResponse | None: ...

    def expire_all(self) -> int: ...


class CommercialRequestStore(Protocol):
    def create(
        self, request: CommercialRequestIn, *, source_ip_hash: str
    ) -> CommercialRequestResponse: ...


class RateLimiter(Protocol):
    def hit(self, bucket: str, subject: str, *, window_s: int) -> int: ...


class PaymentEventStore(Protocol):
    def record_received(
        self,
        *,
        provider: PaymentProvider,
        provider_event_id: str,
        event_type: str,
        amount: Decimal | None,
        currency: str | None,
        payload: dict[str, Any],
    ) -> UUID | None: ...

    def finish(
        self,
        event_id: UUID,
        *,
        status: str,
        subscription_id: UUID | None = None,
        error: str | None = None,
    ) -> None: ...

    def list_for_tenant(self, *, limit: int) -> list[PaymentEventResponse]: ...


class BillingUow(Protocol):
    @property
    def catalog(self) -> CatalogReader: ...

    @property
    def subscriptions(self) -> SubscriptionStore: ...

    @property
    def trials(self) -> TrialStore: ...

    @property
    def commercial_requests(self) -> CommercialRequestStore: ...

    @property
    def rate_limits(self) -> RateLimiter: ...

    @property
    def payment_events(self) -> PaymentEventStore: ...

    def commit(self) -> None: ...


BillingUowFactory = Callable[[], AbstractContextManager[BillingUow]]
TenantUowFactory = Callable[[UUID | None], AbstractContextManager[BillingUow]]
# Runs ``work`` at most once per key (Powertools idempotency on DynamoDB in the Lambda).
Deduplicator = Callable[[str, Callable[[], WebhookReceipt]], WebhookReceipt]


# Subscriptions


def _price(plan: PlanPrice, interval: BillingInterval) -> Decimal:
    price = plan.price_monthly if interval == "month" else plan.price_yearly
    if price is None:
        raise IntervalNotOffered(f"plan {plan.slug} is not offered with a yearly price")
    return price


def current_subscription(uow_factory: BillingUowFactory) -> CurrentSubscriptionResponse:
    """The tenant's live subscription, else its most recent one, else none."""
    with uow_factory() as uow:
        return CurrentSubscriptionResponse(subscription=uow.subscriptions.latest())


def subscribe(uow_factory: BillingUowFactory, request: SubscribeRequest) -> SubscriptionResponse:
    """Start a subscription to a plan; AlreadySubscribed when one is live (change plan then)."""
    with uow_factory() as uow:
        plan = uow.catalog.plan_price(request.plan_id)
        if plan is None:
            raise PlanNotFound("plan not found")
        amount = _price(plan, request.billing_interval)
        if uow.subscriptions.live() is not None:
            raise AlreadySubscribed("the tenant already has a subscription; change its plan")
        subscription = uow.subscriptions.create(
            plan, interval=request.billing_interval, amount=amount
        )
        uow.commit()
        return subscription


def change_plan(uow_factory: BillingUowFactory, request: ChangePlanRequest) -> SubscriptionResponse:
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
        uow.commit()
        return changed


def cancel_subscription(uow_factory: BillingUowFactory) -> SubscriptionResponse:
    """Cancel the live subscription now."""
    with uow_factory() as uow:
        current = uow.subscriptions.live()
        if current is None:
            raise NoActiveSubscription("the tenant has no active subscription")
        uow.subscriptions.set_status(current.id, "canceled")
        canceled = uow.subscriptions.get(current.id)
        uow.commit()
        return canceled


# Trials


def start_trial(
    uow_factory: BillingUowFactory,
    request: StartTrialRequest,
    *,
    user_id: UUID,
    now: datetime,
) -> TrialResponse:
    """Start the tenant's one trial of an agent or a subnúcleo."""
    with uow_factory() as uow:
        if request.agent_id is not None and not uow.catalog.agent_exists(request.agent_id):
            raise TrialTargetNotFound("agent not found")
        if request.subnucleo_id is not None and not uow.catalog.subnucleo_exists(
            request.subnucleo_id
        ):
            raise TrialTargetNotFound("subnúcleo not found")
        if uow.trials.exists_for(agent_id=request.agent_id, subnucleo_id=request.subnucleo_id):
            raise TrialAlreadyUsed("the tenant already had a trial of this product")
        trial = uow.trials.create(
            user_id=user_id,
            agent_id=request.agent_id,
            subnucleo_id=request.subnucleo_id,
            expires_at=now + timedelta(days=TRIAL_DURATION_DAYS),
            max_usage=TRIAL_MAX_USAGE,
        )
        uow.commit()
        return trial


def list_trials(uow_factory: BillingUowFactory) -> TrialList:
    with uow_factory() as uow:
        return TrialList(items=uow.trials.list_all())


def trial_usage(uow_factory: BillingUowFactory, trial_id: UUID) -> TrialResponse:
    with uow_factory() as uow:
        trial = uow.trials.get(trial_id)
    if trial is None:
        raise TrialNotFound("trial not found")
    return trial


def record_trial_use(uow_factory: BillingUowFactory, trial_id: UUID) -> TrialResponse:
    """Count one use of an active trial; TrialUsedUp once it expired or ran out."""
    with uow_factory() as uow:
        used = uow.trials.record_use(trial_id)
        if used is None:
            if uow.trials.get(trial_id) is None:
                raise TrialNotFound("trial not found")
            raise TrialUsedUp("the trial has expired or has no uses left")
        uow.commit()
        return used


def expire_trials(uow_factory: BillingUowFactory) -> int:
    """Expire every active trial past its time or usage, in every tenant; returns how many."""
    with uow_factory() as uow:
        expired = uow.trials.expire_all()
        uow.commit()
        return expired


# Commercial requests


def submit_commercial_request(
    uow_factory: BillingUowFactory, request: CommercialRequestIn, *, client_ip: str
) -> CommercialRequestResponse:
    """Record a "talk to sales" request, at most a few per client IP per window.

    The IP is kept only as a SHA-256 digest (rate limiting needs no more).
    """
    subject = hashlib.sha256(client_ip.encode()).hexdigest()
    with uow_factory() as uow:
        count = uow.rate_limits.hit(
            COMMERCIAL_REQUESTS_BUCKET, subject, window_s=COMMERCIAL_REQUESTS_WINDOW_S
        )
        if count > COMMERCIAL_REQUESTS_PER_IP:
            raise CommercialRequestsRateLimited("too many requests from this address; retry later")
        created = uow.commercial_requests.create(request, source_ip_hash=subject)
        uow.commit()
        return created


# Payment webhooks


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Webhook-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_SCHEME}={digest.hexdigest()}"


def verify_signature(
    secret: str, *, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> None:
    """HMAC-SHA256 over ``timestamp + "." + body``, within the tolerance; else InvalidSignature.

    Several comma-separated signatures are accepted, so the secret can be rotated.
    """
    if not timestamp or not signature:
        raise InvalidSignature("missing webhook signature")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise InvalidSignature("invalid webhook timestamp") from None
    if abs(now - sent_at) > WEBHOOK_TOLERANCE_S:
        raise InvalidSignature("webhook timestamp outside the tolerance")
    expected = sign(secret, timestamp, body)
    offered = [part.strip() for part in signature.split(",")]
    if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
        raise InvalidSignature("webhook signature does not match")


def parse_payment_event(body: bytes) -> tuple[PaymentEventIn, dict[str, Any]]:
    try:
        payload = json.loads(body)
        return PaymentEventIn.model_validate(payload), payload
    except json.JSONDecodeError:
        raise ValidationFailed("webhook body is not valid JSON") from None
    except ValidationError as error:
        details = [
            {"loc": ["body", *map(str, err["loc"])], "msg": err["msg"], "type": err["type"]}
            for err in error.errors()
        ]
        raise ValidationFailed("webhook body is invalid", details=details) from None


def receive_payment_webhook(
    uow_factory: TenantUowFactory,
    *,
    provider: PaymentProvider,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    signing_secret: str,
    now: float,
    deduplicate: Deduplicator,
) -> WebhookReceipt:
    """Verify, then record a provider event once and apply it to the subscription it names.

    Nothing is written before the signature checks out. The event row and the subscription's
    new status commit together; a redelivered event id changes nothing.
    """
    verify_signature(signing_secret, timestamp=timestamp, signature=signature, body=body, now=now)
    event, payload = parse_payment_event(body)
    return deduplicate(
        f"{provider}:{event.id}",
        lambda: _apply_payment_event(uow_factory, provider, event, payload),
    )


def _apply_payment_event(
    uow_factory: TenantUowFactory,
    provider: PaymentProvider,
    event: PaymentEventIn,
    payload: dict[str, Any],
) -> WebhookReceipt:
    with uow_factory(event.data.tenant_id) as uow:
        row_id = uow.payment_events.record_received(
            provider=provider,
            provider_event_id=event.id,
            event_type=event.type,
            amount=event.data.amount,
            currency=event.data.currency,
            payload=payload,
        )
        if row_id is None:
            return WebhookReceipt(event_id=event.id, status="duplicate")
        new_status = STATUS_BY_EVENT_TYPE.get(event.type)
        subscription_id = (
            uow.subscriptions.find_by_provider_id(provider, event.data.subscription_id)
            if event.data.tenant_id and event.data.subscription_id
            else None
        )
        if new_status is None or subscription_id is None:
            reason = "unhandled event type" if new_status is None else "no matching subscription"
            uow.payment_events.finish(
                row_id, status="ignored", subscription_id=subscription_id, error=reason
            )
            uow.commit()
            return WebhookReceipt(event_id=event.id, status="ignored")
        uow.subscriptions.set_status(subscription_id, new_status)
        uow.payment_events.finish(row_id, status="processed", subscription_id=subscription_id)
        uow.commit()
        return WebhookReceipt(event_id=event.id, status="processed")


def list_payment_events(uow_factory: BillingUowFactory, *, limit: int) -> PaymentEventList:
    """The newest provider events of the tenant's subscriptions."""
    with uow_factory() as uow:
        return PaymentEventList(items=uow.payment_events.list_for_tenant(limit=limit))
