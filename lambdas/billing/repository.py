"""Billing's unit of work: the sub-domain repositories over one transaction, and the payment
providers' signing secrets."""

from __future__ import annotations

from lambdas.billing.models import WebhookProvider
from lambdas.billing.repositories.catalog import CatalogRepository
from lambdas.billing.repositories.commercial_requests import (
    CommercialRequestRepository,
    RateLimitRepository,
)
from lambdas.billing.repositories.payments import PaymentEventRepository
from lambdas.billing.repositories.subscriptions import SubscriptionRepository
from lambdas.billing.repositories.trials import TrialRepository
from lambdas.shared.db import UnitOfWork
from lambdas.shared.secrets import get_json_secret


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


def webhook_signing_secret(provider: WebhookProvider, secret_id: str, *, max_age: int) -> str:
    """The provider's webhook signing secret (Secrets Manager ``{"webhook_secret": "..."}``,
    cached per execution environment)."""
    value = get_json_secret(secret_id, max_age=max_age).get("webhook_secret")
    if not isinstance(value, str) or not value:
        raise TypeError(f"the {provider} secret {secret_id} has no webhook_secret")
    return value
