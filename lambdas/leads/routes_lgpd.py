"""LGPD: data subject requests (Art. 18, 19), the processing record (Art. 37), and the daily
metrics."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from lambdas.leads import reports_service
from lambdas.leads.dependencies import LeadsDependencies
from lambdas.leads.errors import InvalidLead, LeadNotFound, LeadSuppressed, RequestNotFound
from lambdas.leads.models import (
    ConsentHistory,
    ConsentProof,
    DataSubjectRequest,
    DsrList,
    DsrRequest,
    DsrResponse,
    MetricsResponse,
    ProcessingRecord,
)
from lambdas.shared.errors import ValidationFailed, error_responses
from lambdas.shared.http import current_scope

router = Router()  # type: ignore[no-untyped-call]
deps = LeadsDependencies(router)


@router.post(
    "/api/leads/dsr",
    status_code=201,
    summary="Carry out a data subject request (access/portability export, correction, erasure)",
    responses=error_responses(LeadNotFound, InvalidLead, LeadSuppressed, success=201),
)
def create_request(request: DsrRequest) -> DsrResponse:
    return carry_out(request, requested_by=current_scope(router).caller.user_id)


def carry_out(request: DsrRequest, *, requested_by: UUID | None) -> DsrResponse:
    if request.kind == "access":
        done, export = deps.lgpd().access(request.lead_id, requested_by=requested_by)
        return DsrResponse(request=DataSubjectRequest.model_validate(done), export=export)
    if request.kind == "correction":
        done = deps.lgpd().correct(
            request.lead_id, request.changes or {}, requested_by=requested_by
        )
        return DsrResponse(request=DataSubjectRequest.model_validate(done))
    request_id = deps.lgpd().erase(
        request.lead_id, suppress=request.suppress, requested_by=requested_by
    )
    done = deps.lgpd().get_request(request_id)
    return DsrResponse(request=DataSubjectRequest.model_validate(done))


@router.get("/api/leads/dsr", summary="The tenant's data subject requests, nearest deadline first")
def list_requests(
    status: Annotated[
        Literal["open", "in_progress", "completed", "rejected"] | None, Query()
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DsrList:
    rows = deps.lgpd().requests(status=status, limit=limit)
    return DsrList(items=[DataSubjectRequest.model_validate(row) for row in rows])


@router.get(
    "/api/leads/dsr/<request_id>",
    summary="A data subject request's status and deadline",
    responses=error_responses(RequestNotFound),
)
def get_request(request_id: Annotated[UUID, Path()]) -> DataSubjectRequest:
    return DataSubjectRequest.model_validate(deps.lgpd().get_request(request_id))


@router.get(
    "/api/leads/<lead_id>/consents",
    summary="The lead's consent history (LGPD Art. 8 proof), oldest first",
    description=(
        "Every grant, withdrawal and denial as recorded, append-only: who recorded it "
        "(`recorded_by`, null for the person's own form submission), when, the channel, the "
        "purposes, the exact text version shown and the HMAC-SHA256 of the IP it came from. "
        "A deleted or anonymised lead keeps its history (erasure clears the IP digest)."
    ),
    responses=error_responses(LeadNotFound),
)
def consent_history(lead_id: Annotated[UUID, Path()]) -> ConsentHistory:
    events = deps.lgpd().consent_history(lead_id)
    return ConsentHistory(
        lead_id=lead_id, items=[ConsentProof.model_validate(event) for event in events]
    )


@router.get(
    "/api/leads/processing-record",
    summary="The tenant's record of processing (LGPD Art. 37)",
)
def processing_record() -> ProcessingRecord:
    return reports_service.processing_record(
        deps.uow, tenant_id=current_scope(router).caller.tenant_id
    )


@router.get(
    "/api/leads/metrics",
    summary="Daily numbers per campaign (new leads, contacted, replied, meetings, conversions)",
    responses=error_responses(ValidationFailed),
)
def metrics(
    day_from: Annotated[date | None, Query(alias="from")] = None,
    day_to: Annotated[date | None, Query(alias="to")] = None,
) -> MetricsResponse:
    return reports_service.metrics(deps.uow, day_from=day_from, day_to=day_to)
