"""Campaigns (campanhas), a lead's timeline (interacoes) and meetings (agendamentos)."""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar
from uuid import UUID

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from pydantic import BaseModel

from lambdas.leads.dependencies import LeadsDependencies
from lambdas.leads.errors import CampaignNotFound, LeadNotFound, MeetingNotFound
from lambdas.leads.models import (
    Campaign,
    CampaignList,
    CampaignNumbers,
    CampaignStatus,
    CampaignStatusRequest,
    CreateCampaignRequest,
    Interaction,
    InteractionRequest,
    MeetingView,
    RescheduleMeetingRequest,
    ScheduleMeetingRequest,
    Timeline,
)
from lambdas.leads.pipeline_service import MeetingNotOpen
from lambdas.leads.preconditions import PreconditionFailed, PreconditionRequired, etag
from lambdas.shared.errors import BadRequest, error_responses
from lambdas.shared.http import current_scope

router = Router()  # type: ignore[no-untyped-call]
deps = LeadsDependencies(router)

M = TypeVar("M", bound=BaseModel)
IfMatch = Annotated[
    str | None,
    Header(alias="if-match", max_length=40, description="The ETag read (428 without, 412 stale)"),
]
PRECONDITIONS = (BadRequest, PreconditionFailed, PreconditionRequired)


def versioned(model: M, version: int, status: int = 200) -> Response[M]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=model,
        headers={"ETag": etag(version)},
    )


@router.post(
    "/api/leads/campaigns",
    status_code=201,
    summary="Create a campaign (draft)",
    responses=error_responses(success=201),
)
def create_campaign(request: CreateCampaignRequest) -> Response[Campaign]:
    campaign = deps.pipeline().create_campaign(request)
    return versioned(campaign, campaign.version, 201)


@router.get("/api/leads/campaigns", summary="The tenant's campaigns, newest first")
def list_campaigns(
    status: Annotated[CampaignStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CampaignList:
    return CampaignList(items=deps.pipeline().campaigns(status=status, limit=limit))


@router.get(
    "/api/leads/campaigns/<campaign_id>",
    summary="A campaign and its numbers (its leads: GET /api/leads?campanha_id=)",
    responses=error_responses(CampaignNotFound),
)
def get_campaign(campaign_id: Annotated[UUID, Path()]) -> Response[CampaignNumbers]:
    numbers = deps.pipeline().campaign_numbers(campaign_id)
    return versioned(numbers, numbers.campaign.version)


@router.post(
    "/api/leads/campaigns/<campaign_id>/status",
    summary="Move a campaign to another status (If-Match required)",
    responses=error_responses(CampaignNotFound, *PRECONDITIONS),
)
def set_campaign_status(
    campaign_id: Annotated[UUID, Path()], request: CampaignStatusRequest, if_match: IfMatch = None
) -> Response[Campaign]:
    campaign = deps.pipeline().set_campaign_status(campaign_id, request.status, if_match=if_match)
    return versioned(campaign, campaign.version)


@router.delete(
    "/api/leads/campaigns/<campaign_id>",
    summary="Soft-delete a campaign (If-Match required)",
    responses=error_responses(CampaignNotFound, *PRECONDITIONS),
)
def delete_campaign(
    campaign_id: Annotated[UUID, Path()], if_match: IfMatch = None
) -> Response[Campaign]:
    campaign = deps.pipeline().delete_campaign(campaign_id, if_match=if_match)
    return versioned(campaign, campaign.version)


@router.get(
    "/api/leads/meetings/<meeting_id>",
    summary="A meeting, its times also in the tenant's time zone",
    responses=error_responses(MeetingNotFound),
)
def get_meeting(meeting_id: Annotated[UUID, Path()]) -> Response[MeetingView]:
    meeting = deps.pipeline().get_meeting(meeting_id)
    return versioned(meeting, meeting.version)


@router.post(
    "/api/leads/meetings/<meeting_id>/reschedule",
    summary="Move a meeting (If-Match required; 409 if the owner is busy then)",
    responses=error_responses(MeetingNotFound, MeetingNotOpen, *PRECONDITIONS),
)
def reschedule_meeting(
    meeting_id: Annotated[UUID, Path()],
    request: RescheduleMeetingRequest,
    if_match: IfMatch = None,
) -> Response[MeetingView]:
    meeting = deps.pipeline().reschedule(meeting_id, request, if_match=if_match)
    return versioned(meeting, meeting.version)


def _finish(
    meeting_id: UUID, outcome: Literal["canceled", "completed"], if_match: str | None
) -> Response[MeetingView]:
    meeting = deps.pipeline().finish(meeting_id, outcome, if_match=if_match)
    return versioned(meeting, meeting.version)


@router.post(
    "/api/leads/meetings/<meeting_id>/cancel",
    summary="Cancel a meeting (frees the owner's slot; If-Match required)",
    responses=error_responses(MeetingNotFound, MeetingNotOpen, *PRECONDITIONS),
)
def cancel_meeting(
    meeting_id: Annotated[UUID, Path()], if_match: IfMatch = None
) -> Response[MeetingView]:
    return _finish(meeting_id, "canceled", if_match)


@router.post(
    "/api/leads/meetings/<meeting_id>/complete",
    summary="Mark a meeting as held (If-Match required)",
    responses=error_responses(MeetingNotFound, MeetingNotOpen, *PRECONDITIONS),
)
def complete_meeting(
    meeting_id: Annotated[UUID, Path()], if_match: IfMatch = None
) -> Response[MeetingView]:
    return _finish(meeting_id, "completed", if_match)


@router.post(
    "/api/leads/<lead_id>/interactions",
    status_code=201,
    summary="Append to the lead's timeline (calls, e-mails, WhatsApp, notes, agent actions)",
    responses=error_responses(LeadNotFound, success=201),
)
def record_interaction(
    lead_id: Annotated[UUID, Path()], request: InteractionRequest
) -> Interaction:
    return deps.pipeline().record_interaction(
        lead_id, request, user_id=current_scope(router).caller.user_id
    )


@router.get(
    "/api/leads/<lead_id>/interactions",
    summary="The lead's timeline, newest first",
    responses=error_responses(LeadNotFound),
)
def timeline(
    lead_id: Annotated[UUID, Path()], limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> Timeline:
    return Timeline(items=deps.pipeline().timeline(lead_id, limit=limit))


@router.post(
    "/api/leads/<lead_id>/meetings",
    status_code=201,
    summary="Schedule a meeting with the lead (409 if the owner is busy then)",
    responses=error_responses(LeadNotFound, success=201),
)
def schedule_meeting(
    lead_id: Annotated[UUID, Path()], request: ScheduleMeetingRequest
) -> Response[MeetingView]:
    meeting = deps.pipeline().schedule(
        lead_id, request, owner_user_id=current_scope(router).caller.user_id
    )
    return versioned(meeting, meeting.version, 201)
