"""Settling a stored conflict of a campaign, an interaction or a meeting (a lead's:
``SyncService.resolve``). keep_theirs keeps the server's row; keep_mine writes the client's
fields over it (or deletes it, when the client's side was a delete: a campaign is soft-deleted,
a meeting canceled); merged writes the given fields. The server's row is locked and written
through the same batch writers a push uses, so the rules (live-name index, the owner's
no-overlap constraint, an open meeting only) are the same."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError

from lambdas.leads.errors import CampaignNameTaken, MeetingOverlaps
from lambdas.leads.models import (
    EDITABLE_CAMPAIGN_FIELDS,
    EDITABLE_MEETING_FIELDS,
    CampaignFields,
    Conflict,
    MeetingFields,
)
from lambdas.leads.pipeline_service import record_campaign, record_meeting
from lambdas.leads.ports import BatchRefused, LeadsUow
from lambdas.leads.sync_pipeline import OPEN_MEETING
from lambdas.shared.errors import Conflict as ConflictError
from lambdas.shared.errors import ValidationFailed


def _validated(model: type[BaseModel], document: dict[str, Any]) -> dict[str, Any]:
    try:
        return model.model_validate(document).model_dump(mode="json")
    except ValidationError as error:
        raise ValidationFailed("the resolved document is not valid") from error


def resolve_pipeline_conflict(
    uow: LeadsUow, conflict: Conflict, changes: dict[str, Any], *, delete: bool
) -> int | None:
    """Write the resolution's ``changes`` (or the client's delete); returns the row's version
    afterwards (None: gone). ConflictError when the row can no longer take the change (deleted,
    a meeting no longer open, an interaction)."""
    if conflict.entity == "interaction":
        _refuse_if(changes or delete, "interactions are append-only: keep_theirs settles this")
        interaction = uow.pipeline_writes.interactions([conflict.entity_id])
        return interaction[conflict.entity_id].version if interaction else None
    if conflict.entity == "campaign":
        return _resolve_campaign(uow, conflict.entity_id, changes, delete=delete)
    return _resolve_meeting(uow, conflict.entity_id, changes, delete=delete)


def _resolve_campaign(
    uow: LeadsUow, campaign_id: UUID, changes: dict[str, Any], *, delete: bool
) -> int | None:
    store = uow.pipeline_writes
    campaign = store.campaigns([campaign_id], lock=True).get(campaign_id)
    if not (changes or delete):
        return campaign.version if campaign else None
    if campaign is None or campaign.deleted_at is not None:
        raise ConflictError("the campaign was deleted; create it again instead")
    if delete:
        campaign = store.delete_campaigns([campaign_id])[campaign_id]
        record_campaign(uow, "campaign.deleted", campaign)
        return campaign.version
    row = _validated(
        CampaignFields,
        campaign.model_dump(mode="json", include=set(EDITABLE_CAMPAIGN_FIELDS)) | changes,
    )
    try:
        campaign = store.update_campaigns([row | {"id": str(campaign_id)}])[campaign_id]
    except BatchRefused as error:
        raise CampaignNameTaken("a campaign with this name already exists") from error
    record_campaign(uow, "campaign.updated", campaign)
    return campaign.version


def _resolve_meeting(
    uow: LeadsUow, meeting_id: UUID, changes: dict[str, Any], *, delete: bool
) -> int | None:
    store = uow.pipeline_writes
    meeting = store.meetings([meeting_id], lock=True).get(meeting_id)
    if not (changes or delete):
        return meeting.version if meeting else None
    if meeting is None or meeting.deleted_at is not None or meeting.status not in OPEN_MEETING:
        raise ConflictError(f"the meeting is {meeting.status if meeting else 'gone'}")
    if delete:
        meeting = store.cancel_meetings([meeting_id])[meeting_id]
        record_meeting(uow, "meeting.canceled", meeting)
        return meeting.version
    row = _validated(
        MeetingFields,
        meeting.model_dump(mode="json", include=set(EDITABLE_MEETING_FIELDS)) | changes,
    )
    try:
        meeting = store.reschedule_meetings([row | {"id": str(meeting_id)}])[meeting_id]
    except BatchRefused as error:
        raise MeetingOverlaps("the owner already has a meeting at that time") from error
    record_meeting(uow, "meeting.rescheduled", meeting)
    return meeting.version


def _refuse_if(condition: object, message: str) -> None:
    if condition:
        raise ConflictError(message)
