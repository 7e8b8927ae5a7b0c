"""``/api/approvals``: ask, list, read, decide and cancel approval requests."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.metrics import MetricUnit

from lambdas.approvals import service
from lambdas.approvals.errors import (
    AlreadyDecided,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalNotPending,
    NotADecider,
    NotTheRequester,
    ReasonRequired,
    SelfApproval,
)
from lambdas.approvals.models import (
    ApprovalAsk,
    ApprovalRecord,
    DecisionOutcome,
    DecisionRequest,
    GateOutcome,
)
from lambdas.approvals.repository import ApprovalsUnitOfWork
from lambdas.approvals.transitions import Status
from lambdas.shared.constants import APPROVAL_LATENCY_METRIC
from lambdas.shared.cursors import InvalidCursor
from lambdas.shared.errors import error_responses
from lambdas.shared.gate import ActionBlocked
from lambdas.shared.http import current_scope
from lambdas.shared.observability import metrics

router = Router()  # type: ignore[no-untyped-call]


def _uow() -> ApprovalsUnitOfWork:
    scope = current_scope(router)
    return ApprovalsUnitOfWork(scope, scope.caller.tenant_id)


def _caller() -> UUID:
    return current_scope(router).caller.user_id


@router.get(
    "/api/approvals",
    summary="List the tenant's approval requests, newest first",
    responses=error_responses(InvalidCursor),
)
def list_approvals(
    status: Annotated[
        Status | None,
        Query(
            description="the status the requests read: pending ones past their expiry are "
            "expired, not pending"
        ),
    ] = None,
    waiting_for_me: Annotated[
        bool, Query(description="pending, unexpired requests the caller may still decide")
    ] = False,
    mine: Annotated[bool, Query(description="requests the caller asked for")] = False,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> service.ApprovalPage:
    return service.list_approvals(
        _uow,
        user_id=_caller(),
        status=status,
        waiting_for_me=waiting_for_me,
        mine=mine,
        cursor=cursor,
        limit=limit,
    )


@router.post(
    "/api/approvals",
    summary="Ask to perform a sensitive action: allowed at once, or pending approval",
    responses=error_responses(ActionBlocked),
)
def request_approval(ask: ApprovalAsk) -> GateOutcome:
    return service.request_approval(_uow, ask)


@router.get(
    "/api/approvals/<approval_id>",
    summary="Get an approval request with its decisions and the evaluation that caused it",
    responses=error_responses(ApprovalNotFound),
)
def get_approval(approval_id: Annotated[UUID, Path()]) -> ApprovalRecord:
    return service.get_approval(_uow, approval_id)


@router.post(
    "/api/approvals/<approval_id>/decisions",
    summary="Approve or reject a pending request, with a reason (not your own request)",
    description="A refused attempt (your own request, no permission to decide, a request "
    "expired or already ended, a second decision) writes nothing but its `denied` audit row "
    "`approval.decision_refused` (metadata: the request id and the error code). Another "
    "tenant's request is 404 and audited nowhere.",
    responses=error_responses(
        ApprovalNotFound,
        SelfApproval,
        NotADecider,
        ApprovalNotPending,
        ApprovalExpired,
        AlreadyDecided,
        ReasonRequired,
    ),
)
def decide(approval_id: Annotated[UUID, Path()], request: DecisionRequest) -> DecisionOutcome:
    outcome = service.decide(
        _uow, approval_id, decider=_caller(), decision=request.decision, reason=request.reason
    )
    if outcome.created_at is not None and outcome.decided_at is not None:
        latency = (outcome.decided_at - outcome.created_at).total_seconds()
        metrics.add_metric(name=APPROVAL_LATENCY_METRIC, unit=MetricUnit.Seconds, value=latency)
    return outcome


@router.post(
    "/api/approvals/<approval_id>/cancel",
    summary="Withdraw your own pending request",
    responses=error_responses(ApprovalNotFound, NotTheRequester, ApprovalNotPending),
)
def cancel(approval_id: Annotated[UUID, Path()]) -> ApprovalRecord:
    return service.cancel(_uow, approval_id, actor=_caller())
