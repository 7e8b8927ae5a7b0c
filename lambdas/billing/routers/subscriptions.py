from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from lambdas.billing.dependencies import tenant_uow
from lambdas.billing.models import (
    ChangePlanRequest,
    CurrentSubscriptionResponse,
    PaymentEventList,
    SubscribeRequest,
    SubscriptionResponse,
)
from lambdas.billing.services import payments
from lambdas.billing.services import subscriptions as service
from lambdas.plans.service import PlanNotFound
from lambdas.shared.errors import error_responses

router = Router()  # type: ignore[no-untyped-call]
_uow = tenant_uow(router)


@router.get("/api/billing/subscription", summary="The tenant's current subscription")
def current_subscription() -> CurrentSubscriptionResponse:
    return service.current_subscription(_uow)


@router.post(
    "/api/billing/subscribe",
    status_code=201,
    summary="Subscribe the tenant to a plan (admin)",
    responses=error_responses(
        PlanNotFound, service.AlreadySubscribed, service.IntervalNotOffered, success=201
    ),
)
def subscribe(request: SubscribeRequest) -> SubscriptionResponse:
    return service.subscribe(_uow, request)


@router.post(
    "/api/billing/change-plan",
    summary="Change the live subscription's plan (admin)",
    responses=error_responses(
        service.NoActiveSubscription, PlanNotFound, service.IntervalNotOffered
    ),
)
def change_plan(request: ChangePlanRequest) -> SubscriptionResponse:
    return service.change_plan(_uow, request)


@router.post(
    "/api/billing/cancel",
    summary="Cancel the live subscription now (admin)",
    responses=error_responses(service.NoActiveSubscription),
)
def cancel() -> SubscriptionResponse:
    return service.cancel_subscription(_uow)


@router.get("/api/billing/payment-events", summary="The tenant's payment events (admin)")
def payment_events(limit: Annotated[int, Query(ge=1, le=100)] = 50) -> PaymentEventList:
    return payments.list_payment_events(_uow, limit=limit)
