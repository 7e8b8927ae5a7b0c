"""The billing routes without a JWT: sales contact requests and payment provider webhooks."""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Annotated, Any, cast

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from lambdas.billing import service
from lambdas.billing.dependencies import public_uow, scoped_uow
from lambdas.billing.models import (
    CommercialRequestIn,
    CommercialRequestResponse,
    PaymentProvider,
    WebhookReceipt,
)
from lambdas.billing.repository import webhook_signing_secret
from lambdas.shared.constants import WEBHOOK_IDEMPOTENCY_S
from lambdas.shared.errors import ServiceUnavailable, ValidationFailed, error_responses
from lambdas.shared.idempotency import OnceInProgress, run_once
from lambdas.shared.settings import get_billing_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.api_gateway_proxy_event import (
        APIGatewayProxyEventV2,
    )

router = Router()  # type: ignore[no-untyped-call]

TIMESTAMP_HEADER = "x-webhook-timestamp"
SIGNATURE_HEADER = "x-webhook-signature"


@router.post(
    "/api/billing/commercial-requests",
    status_code=201,
    summary="Ask sales to get in touch (public, rate limited per IP)",
    responses=error_responses(service.CommercialRequestsRateLimited, success=201),
)
def commercial_request(request: CommercialRequestIn) -> CommercialRequestResponse:
    event = cast("APIGatewayProxyEventV2", router.current_event)
    client_ip = event.request_context.http.source_ip
    return service.submit_commercial_request(public_uow, request, client_ip=client_ip)


@router.post(
    "/api/billing/webhooks/<provider>",
    summary="Payment provider webhook (public; HMAC-SHA256 signed)",
    description=(
        "Signed with HMAC-SHA256 over `<X-Webhook-Timestamp>.<raw body>`, sent as "
        "`X-Webhook-Signature: v1=<hex>`; timestamps older than 5 minutes are refused. "
        "Body: `{id, type, data: {tenant_id, subscription_id, amount, currency}}`."
    ),
    responses=error_responses(
        service.InvalidSignature, OnceInProgress, ValidationFailed, ServiceUnavailable
    ),
)
def payment_webhook(provider: Annotated[PaymentProvider, Path()]) -> WebhookReceipt:
    event = router.current_event
    raw = event.body or ""
    body = base64.b64decode(raw) if event.is_base64_encoded else raw.encode()
    settings = get_billing_settings()
    if not settings.webhook_secret_id or not settings.idempotency_table:
        raise ServiceUnavailable("webhooks are not configured")
    table = settings.idempotency_table

    def deduplicate(key: str, work: Any) -> WebhookReceipt:
        result = run_once(
            table,
            key,
            lambda: work().model_dump(mode="json"),
            context=router.lambda_context,
            expires_after_s=WEBHOOK_IDEMPOTENCY_S,
        )
        return WebhookReceipt.model_validate(result)

    return service.receive_payment_webhook(
        scoped_uow,
        provider=provider,
        body=body,
        timestamp=event.headers.get(TIMESTAMP_HEADER),
        signature=event.headers.get(SIGNATURE_HEADER),
        signing_secret=webhook_signing_secret(
            settings.webhook_secret_id, max_age=settings.webhook_secret_max_age_s
        ),
        now=time.time(),
        deduplicate=deduplicate,
    )
