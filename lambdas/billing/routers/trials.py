from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from lambdas.billing.dependencies import tenant_uow
from lambdas.billing.models import StartTrialRequest, TrialList, TrialResponse
from lambdas.billing.services import trials as service
from lambdas.shared.errors import error_responses
from lambdas.shared.http import current_scope

router = Router()  # type: ignore[no-untyped-call]
_uow = tenant_uow(router)


@router.post(
    "/api/billing/trials",
    status_code=201,
    summary="Start a trial of an agent or subnúcleo",
    responses=error_responses(service.TrialTargetNotFound, service.TrialAlreadyUsed, success=201),
)
def start_trial(request: StartTrialRequest) -> TrialResponse:
    return service.start_trial(
        _uow, request, user_id=current_scope(router).caller.user_id, now=datetime.now(UTC)
    )


@router.get("/api/billing/trials", summary="The tenant's trials")
def list_trials() -> TrialList:
    return service.list_trials(_uow)


@router.get(
    "/api/billing/trials/<trial_id>/usage",
    summary="A trial's usage and time left",
    responses=error_responses(service.TrialNotFound),
)
def trial_usage(trial_id: Annotated[UUID, Path()]) -> TrialResponse:
    return service.trial_usage(_uow, trial_id)


@router.post(
    "/api/billing/trials/<trial_id>/usage",
    summary="Count one use of a trial",
    responses=error_responses(service.TrialNotFound, service.TrialUsedUp),
)
def record_trial_use(trial_id: Annotated[UUID, Path()]) -> TrialResponse:
    return service.record_trial_use(_uow, trial_id)
