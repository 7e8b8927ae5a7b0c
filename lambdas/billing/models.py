from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Who bills a subscription: a payment provider, or nobody yet ("manual": created through the API
# and not linked to a provider subscription).
PaymentProvider = Literal["stripe", "mercadopago", "manual"]
# The providers whose webhooks are verified and applied (docs/api.md, "Payment webhooks").
WebhookProvider = Literal["stripe", "mercadopago"]
BillingInterval = Literal["month", "year"]
SubscriptionStatus = Literal["active", "past_due", "canceled", "trialing"]
TrialStatus = Literal["active", "expired", "converted", "canceled"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Subscriptions


class SubscribeRequest(_Request):
    plan_id: UUID
    billing_interval: BillingInterval = "month"


class ChangePlanRequest(_Request):
    plan_id: UUID
    billing_interval: BillingInterval | None = Field(
        default=None, description="keep the current interval when omitted"
    )


class SubscriptionResponse(_Response):
    id: UUID
    plan_id: UUID
    plan_slug: str
    plan_name: str
    status: SubscriptionStatus
    provider: PaymentProvider
    billing_interval: BillingInterval
    amount: Decimal
    currency: str
    current_period_start: datetime
    current_period_end: datetime | None
    canceled_at: datetime | None


class CurrentSubscriptionResponse(_Response):
    subscription: SubscriptionResponse | None


class PlanPrice(_Response):
    id: UUID
    slug: str
    price_monthly: Decimal
    price_yearly: Decimal | None
    currency: str


# Trials


class StartTrialRequest(_Request):
    agent_id: UUID | None = None
    subnucleo_id: UUID | None = None

    @model_validator(mode="after")
    def _exactly_one_target(self) -> Self:
        if (self.agent_id is None) == (self.subnucleo_id is None):
            raise ValueError("give exactly one of agent_id or subnucleo_id")
        return self


class TrialResponse(_Response):
    id: UUID
    agent_id: UUID | None
    subnucleo_id: UUID | None
    status: TrialStatus = Field(description="'expired' as soon as the time or the usage ran out")
    started_at: datetime
    expires_at: datetime
    max_usage: int
    usage_count: int
    remaining_usage: int


class TrialList(_Response):
    items: list[TrialResponse]


# Commercial requests


class CommercialRequestIn(_Request):
    company_name: str = Field(min_length=1, max_length=200)
    contact_name: str = Field(min_length=1, max_length=200)
    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(default=None, max_length=40, pattern=r"^\+?[0-9 ().-]{8,40}$")
    tax_id: str | None = Field(default=None, max_length=32, pattern=r"^[0-9./-]{11,32}$")
    plan_id: UUID | None = None
    subnucleo_ids: list[UUID] = Field(default_factory=list, max_length=10)
    message: str | None = Field(default=None, max_length=5000)
    consent_given: Literal[True] = Field(
        description="consent to be contacted about this request (LGPD); must be true"
    )


class CommercialRequestResponse(_Response):
    id: UUID
    status: Literal["new"]
    created_at: datetime


# Payment provider webhooks


ReceiptStatus = Literal["processed", "received", "ignored", "duplicate"]


class WebhookReceipt(_Response):
    event_id: str
    status: ReceiptStatus = Field(
        description=(
            "processed: applied to a subscription; received: recorded, nothing to change "
            "without fetching the resource from the provider; ignored: recorded, not about "
            "a known subscription or not a handled type; duplicate: already delivered"
        )
    )


class PaymentEventResponse(_Response):
    id: UUID
    # rows recorded before providers were verified for real may name a retired provider
    provider: str = Field(examples=["stripe", "mercadopago"])
    provider_event_id: str
    event_type: str
    status: Literal["received", "processed", "ignored", "failed"]
    subscription_id: UUID | None
    amount: Decimal | None
    currency: str | None
    received_at: datetime
    processed_at: datetime | None


class PaymentEventList(_Response):
    items: list[PaymentEventResponse]
