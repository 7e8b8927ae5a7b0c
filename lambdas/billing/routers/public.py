"""The billing routes without a JWT: sales contact requests and payment provider webhooks."""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Annotated, cast

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from lambdas.billing.dependencies import public_uow, scoped_uow
from lambdas.billing.models import (
    CommercialRequestIn,
    CommercialRequestResponse,
    WebhookProvider,
    WebhookReceipt,
)
from lambdas.billing.providers import InvalidSignature, WebhookDelivery
from lambdas.billing.repository import webhook_signing_secret
from lambdas.billing.services import commercial_requests, payments
from lambdas.shared.errors import (
    BadRequest,
    ServiceUnavailable,
    ValidationFailed,
    error_responses,
)
from lambdas.shared.runtime import get_runtime

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.api_gateway_proxy_event import (
        APIGatewayProxyEventV2,
    )

router = Router()  # type: ignore[no-untyped-call]
_public_uow = public_uow(router)
_scoped_uow = scoped_uow(router)


@router.post(
    "/api/billing/commercial-requests",
    status_code=201,
    summary="Ask sales to get in touch (public, rate limited per IP)",
    responses=error_responses(
        commercial_requests.CommercialRequestsRateLimited,
        commercial_requests.UnknownPlan,
        success=201,
    ),
)
def commercial_request(request: CommercialRequestIn) -> CommercialRequestResponse:
    event = cast("APIGatewayProxyEventV2", router.current_event)
    client_ip = event.request_context.http.source_ip
    return commercial_requests.submit_commercial_request(_public_uow, request, client_ip=client_ip)


@router.post(
    "/api/billing/webhooks/<provider>",
    summary="Payment provider webhook (public; verified with the provider's own signature)",
    description=(
        "`stripe`: a Stripe event as Stripe sends it, verified from `Stripe-Signature` with the "
        "official SDK (5-minute tolerance). `mercadopago`: a Mercado Pago notification, "
        "verified from `x-signature` (`ts=…,v1=…`, HMAC-SHA256 over "
        "`id:<data.id>;request-id:<x-request-id>;ts:<ts>;`). Each event is recorded once by "
        "the provider's event id; see docs/api.md for what each event changes."
    ),
    responses=error_responses(InvalidSignature, BadRequest, ValidationFailed, ServiceUnavailable),
)
def payment_webhook(provider: Annotated[WebhookProvider, Path()]) -> WebhookReceipt:
    event = router.current_event
    raw = event.body or ""
    body = base64.b64decode(raw) if event.is_base64_encoded else raw.encode()
    settings = get_runtime().billing_settings
    secret_id = settings.webhook_secret_id(provider)
    if not secret_id:
        raise ServiceUnavailable(f"{provider} webhooks are not configured")
    delivery = WebhookDelivery(
        body=body,
        headers={name.lower(): value for name, value in (event.headers or {}).items()},
        query=dict(event.query_string_parameters or {}),
    )
    return payments.receive_payment_webhook(
        _scoped_uow,
        provider=provider,
        delivery=delivery,
        signing_secret=webhook_signing_secret(
            provider, secret_id, max_age=settings.webhook_secret_max_age_s
        ),
        now=time.time(),
    )
