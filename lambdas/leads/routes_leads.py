"""Leads: create, read, update and soft delete with versions (ETag / If-Match), the filtered
list, and a lead's consent history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query

from lambdas.leads.dependencies import LeadsDependencies
from lambdas.leads.errors import DuplicateLead, InvalidLead, LeadNotFound, LeadSuppressed
from lambdas.leads.models import (
    ConsentEvent,
    ConsentRequest,
    Lead,
    LeadFields,
    LeadFilters,
    LeadPage,
    LeadPatch,
    LeadStatus,
)
from lambdas.leads.preconditions import PreconditionFailed, PreconditionRequired, etag
from lambdas.shared.cursors import InvalidCursor
from lambdas.shared.errors import BadRequest, error_responses
from lambdas.shared.http import current_scope

router = Router()  # type: ignore[no-untyped-call]
deps = LeadsDependencies(router)

IfMatch = Annotated[
    str | None,
    Header(
        alias="if-match",
        max_length=40,
        description="The ETag read: required (428 without it, 412 when stale)",
    ),
]


def versioned(lead: Lead, status: int = 200) -> Response[Lead]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=lead,
        headers={"ETag": etag(lead.version)},
    )


@router.post(
    "/api/leads",
    status_code=201,
    summary="Create a lead (normalised e-mail and phone; 409 names an existing lead)",
    responses=error_responses(InvalidLead, LeadSuppressed, DuplicateLead, success=201),
)
def create_lead(request: LeadFields) -> Response[Lead]:
    return versioned(deps.leads().create(request), 201)


@router.get(
    "/api/leads",
    summary="List leads (filters, text search over name/company/e-mail, cursor pagination)",
    responses=error_responses(InvalidCursor)
    | {
        200: {
            "description": "Successful Response",
            "content": {"application/json": {"model": LeadPage}},
        }
    },
)
def list_leads(  # the query's filters, passed by name
    *,
    status: Annotated[LeadStatus | None, Query()] = None,
    campanha_id: Annotated[UUID | None, Query()] = None,
    assigned_to: Annotated[UUID | None, Query()] = None,
    tag: Annotated[list[str] | None, Query(max_length=10)] = None,
    created_from: Annotated[datetime | None, Query()] = None,
    created_to: Annotated[datetime | None, Query()] = None,
    updated_from: Annotated[datetime | None, Query()] = None,
    updated_to: Annotated[datetime | None, Query()] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=2,
            max_length=100,
            description="Case-insensitive substring of the name, company or e-mail "
            '("acme 12" finds "Acme 12 Ltda" and "Acme 120", not "12 Acme")',
        ),
    ] = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response[str]:
    filters = LeadFilters(
        status=status,
        campanha_id=campanha_id,
        assigned_to=assigned_to,
        tags=tag or [],
        created_from=created_from,
        created_to=created_to,
        updated_from=updated_from,
        updated_to=updated_to,
        q=q,
    )
    body = deps.leads().page_json(filters, cursor=cursor, limit=limit)
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=body)


@router.get(
    "/api/leads/<lead_id>",
    summary="Get a lead (ETag: its version)",
    responses=error_responses(LeadNotFound),
)
def get_lead(lead_id: Annotated[UUID, Path()]) -> Response[Lead]:
    return versioned(deps.leads().get(lead_id))


@router.patch(
    "/api/leads/<lead_id>",
    summary="Change a lead's fields (If-Match required)",
    responses=error_responses(
        BadRequest,
        LeadNotFound,
        InvalidLead,
        LeadSuppressed,
        DuplicateLead,
        PreconditionFailed,
        PreconditionRequired,
    ),
)
def update_lead(
    lead_id: Annotated[UUID, Path()], request: LeadPatch, if_match: IfMatch = None
) -> Response[Lead]:
    return versioned(deps.leads().update(lead_id, request.changes(), if_match=if_match))


@router.delete(
    "/api/leads/<lead_id>",
    summary="Soft-delete a lead (If-Match required; purged after 30 days)",
    responses=error_responses(BadRequest, LeadNotFound, PreconditionFailed, PreconditionRequired),
)
def delete_lead(lead_id: Annotated[UUID, Path()], if_match: IfMatch = None) -> Response[Lead]:
    return versioned(deps.leads().delete(lead_id, if_match=if_match))


@router.post(
    "/api/leads/<lead_id>/consents",
    status_code=201,
    summary="Record a consent, its withdrawal or denial (effective at once for outreach)",
    responses=error_responses(InvalidLead, LeadNotFound, success=201),
)
def record_consent(lead_id: Annotated[UUID, Path()], request: ConsentRequest) -> ConsentEvent:
    event = deps.lgpd().record_consent(
        lead_id,
        request.action,
        channel=request.channel,
        purposes=request.purposes,
        text_version=request.text_version,
        ip=request.ip,
        recorded_by=current_scope(router).caller.user_id,
    )
    return ConsentEvent.model_validate(event)
