"""Campaigns, the lead's timeline (append-only) and meetings: versioned like leads (If-Match on
every change), each write recorded without personal data. Tested over PostgreSQL
(tests/integration/test_leads_pipeline_routes.py): the rules live in constraints."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn
from uuid import UUID
from zoneinfo import ZoneInfo

from lambdas.leads.errors import CampaignNotFound, LeadNotFound, MeetingNotFound
from lambdas.leads.models import (
    Campaign,
    CampaignNumbers,
    CampaignStatus,
    CreateCampaignRequest,
    Interaction,
    InteractionRequest,
    Meeting,
    MeetingView,
    RescheduleMeetingRequest,
    ScheduleMeetingRequest,
)
from lambdas.leads.preconditions import PreconditionFailed, expected_version
from lambdas.leads.uow import LeadsUnitOfWork
from lambdas.shared.errors import Conflict
from lambdas.shared.scope import ChangeRecorder, EventDraft


class MeetingNotOpen(Conflict):
    code = "meeting_not_open"


def campaign_event(event: str, campaign: Campaign) -> EventDraft:
    return EventDraft(
        event,
        aggregate_type="campaign",
        aggregate_id=str(campaign.id),
        payload={
            "version": campaign.version,
            "status": campaign.status,
            "channel": campaign.channel,
        },
    )


def meeting_event(event: str, meeting: Meeting) -> EventDraft:
    return EventDraft(
        event,
        aggregate_type="meeting",
        aggregate_id=str(meeting.id),
        payload={
            "lead_id": meeting.lead_id,
            "owner_user_id": meeting.owner_user_id,
            "version": meeting.version,
            "status": meeting.status,
            "scheduled_for": meeting.scheduled_for,
            "duration_minutes": meeting.duration_minutes,
        },
    )


def interaction_event(interaction: Interaction) -> EventDraft:
    return EventDraft(
        "interaction.recorded",
        aggregate_type="interaction",
        aggregate_id=str(interaction.id),
        payload={
            "lead_id": interaction.lead_id,
            "channel": interaction.channel,
            "direction": interaction.direction,
            "kind": interaction.kind,
        },
    )


def record(uow: ChangeRecorder, event: EventDraft) -> None:
    """One change's audit row and event (a single-entity route's record)."""
    uow.record(
        event.event_type,
        aggregate_type=event.aggregate_type,
        aggregate_id=event.aggregate_id,
        payload=event.payload,
        version=event.version,
    )


def record_campaign(uow: ChangeRecorder, event: str, campaign: Campaign) -> None:
    record(uow, campaign_event(event, campaign))


def record_meeting(uow: ChangeRecorder, event: str, meeting: Meeting) -> None:
    record(uow, meeting_event(event, meeting))


def record_interaction(uow: ChangeRecorder, interaction: Interaction) -> None:
    record(uow, interaction_event(interaction))


def shown_in(meeting: Meeting, time_zone: str) -> MeetingView:
    """The meeting with its times also in the tenant's zone (stored as timestamptz)."""
    zone = ZoneInfo(time_zone)
    return MeetingView(
        **meeting.model_dump(),
        time_zone=time_zone,
        scheduled_for_local=meeting.scheduled_for.astimezone(zone).isoformat(),
        ends_at_local=meeting.ends_at.astimezone(zone).isoformat(),
    )


class PipelineService:
    def __init__(self, uow_factory: Callable[[], LeadsUnitOfWork]) -> None:
        self._uow = uow_factory

    def create_campaign(self, request: CreateCampaignRequest) -> Campaign:
        """A draft campaign; CampaignNameTaken (409) if a live one has the name."""
        with self._uow() as uow:
            campaign = uow.campaigns.create(
                name=request.name, channel=request.channel, description=request.description
            )
            record_campaign(uow, "campaign.created", campaign)
            uow.commit()
        return campaign

    def campaigns(self, *, status: CampaignStatus | None, limit: int) -> list[Campaign]:
        with self._uow() as uow:
            return uow.campaigns.page(status=status, limit=limit)

    def campaign_numbers(self, campaign_id: UUID) -> CampaignNumbers:
        """The campaign with its live leads by status (its leads: GET /api/leads?campanha_id=)."""
        with self._uow() as uow:
            campaign = uow.campaigns.get(campaign_id)
            if campaign is None:
                raise CampaignNotFound(f"campaign {campaign_id} not found")
            numbers = uow.campaigns.numbers(campaign_id)
        return CampaignNumbers(
            campaign=campaign, leads_by_status=numbers, leads=sum(numbers.values())
        )

    def set_campaign_status(
        self, campaign_id: UUID, status: CampaignStatus, *, if_match: str | None
    ) -> Campaign:
        expected = expected_version(if_match)
        with self._uow() as uow:
            campaign = uow.campaigns.set_status(campaign_id, status, expected_version=expected)
            if campaign is None:
                refuse_campaign_change(uow, campaign_id)
            record_campaign(uow, "campaign.status_changed", campaign)
            uow.commit()
        return campaign

    def delete_campaign(self, campaign_id: UUID, *, if_match: str | None) -> Campaign:
        expected = expected_version(if_match)
        with self._uow() as uow:
            campaign = uow.campaigns.soft_delete(campaign_id, expected_version=expected)
            if campaign is None:
                refuse_campaign_change(uow, campaign_id)
            record_campaign(uow, "campaign.deleted", campaign)
            uow.commit()
        return campaign

    def record_interaction(
        self, lead_id: UUID, request: InteractionRequest, *, user_id: UUID | None
    ) -> Interaction:
        """Append to the lead's timeline (never edited; erasure blanks the content)."""
        with self._uow() as uow:
            if uow.leads.get(lead_id) is None:
                raise LeadNotFound(f"lead {lead_id} not found")
            interaction = uow.interactions.append(
                lead_id,
                channel=request.channel,
                direction=request.direction,
                kind=request.kind,
                content=request.content,
                user_id=user_id,
                occurred_at=request.occurred_at,
            )
            record_interaction(uow, interaction)
            uow.commit()
        return interaction

    def timeline(self, lead_id: UUID, *, limit: int) -> list[Interaction]:
        with self._uow() as uow:
            if uow.leads.get(lead_id) is None:
                raise LeadNotFound(f"lead {lead_id} not found")
            return uow.interactions.timeline(lead_id, limit=limit)

    def schedule(
        self, lead_id: UUID, request: ScheduleMeetingRequest, *, owner_user_id: UUID | None
    ) -> MeetingView:
        """MeetingOverlaps (409) when the owner has a live meeting at that time."""
        with self._uow() as uow:
            if uow.leads.get(lead_id) is None:
                raise LeadNotFound(f"lead {lead_id} not found")
            meeting = uow.meetings.schedule(
                lead_id,
                owner_user_id=request.owner_user_id or owner_user_id,
                scheduled_for=request.scheduled_for,
                duration_minutes=request.duration_minutes,
            )
            record_meeting(uow, "meeting.scheduled", meeting)
            view = shown_in(meeting, uow.meetings.time_zone())
            uow.commit()
        return view

    def get_meeting(self, meeting_id: UUID) -> MeetingView:
        with self._uow() as uow:
            meeting = uow.meetings.get(meeting_id)
            if meeting is None or meeting.deleted_at is not None:
                raise MeetingNotFound(f"meeting {meeting_id} not found")
            return shown_in(meeting, uow.meetings.time_zone())

    def reschedule(
        self, meeting_id: UUID, request: RescheduleMeetingRequest, *, if_match: str | None
    ) -> MeetingView:
        expected = expected_version(if_match)
        with self._uow() as uow:
            meeting = uow.meetings.reschedule(
                meeting_id,
                scheduled_for=request.scheduled_for,
                duration_minutes=request.duration_minutes,
                expected_version=expected,
            )
            if meeting is None:
                refuse_meeting_change(uow, meeting_id)
            record_meeting(uow, "meeting.rescheduled", meeting)
            view = shown_in(meeting, uow.meetings.time_zone())
            uow.commit()
        return view

    def finish(self, meeting_id: UUID, outcome: str, *, if_match: str | None) -> MeetingView:
        """Cancel ('canceled') or complete ('completed') a scheduled or confirmed meeting."""
        expected = expected_version(if_match)
        with self._uow() as uow:
            meeting = uow.meetings.set_status(meeting_id, outcome, expected_version=expected)
            if meeting is None:
                refuse_meeting_change(uow, meeting_id)
            record_meeting(uow, f"meeting.{outcome}", meeting)
            view = shown_in(meeting, uow.meetings.time_zone())
            uow.commit()
        return view


def refuse_campaign_change(uow: LeadsUnitOfWork, campaign_id: UUID) -> NoReturn:
    """Why a versioned campaign write matched no row: gone (404) or stale (412)."""
    current = uow.campaigns.get(campaign_id)
    if current is None:
        raise CampaignNotFound(f"campaign {campaign_id} not found")
    raise PreconditionFailed(current.version)


def refuse_meeting_change(uow: LeadsUnitOfWork, meeting_id: UUID) -> NoReturn:
    """Why a versioned meeting write matched no row: gone, no longer open, or stale."""
    current = uow.meetings.get(meeting_id)
    if current is None or current.deleted_at is not None:
        raise MeetingNotFound(f"meeting {meeting_id} not found")
    if current.status not in {"scheduled", "confirmed"}:
        raise MeetingNotOpen(f"the meeting is {current.status}")
    raise PreconditionFailed(current.version)
