"""Leads' domain errors (each one line with its code) and the one place that maps constraint
violations to them by constraint name."""

from __future__ import annotations

from uuid import UUID

import psycopg

from lambdas.shared.errors import Conflict, NotFound, ValidationFailed


class LeadNotFound(NotFound):
    code = "lead_not_found"


class MeetingNotFound(NotFound):
    code = "meeting_not_found"


class CampaignNotFound(NotFound):
    code = "campaign_not_found"


class ConflictNotFound(NotFound):
    code = "conflict_not_found"


class RequestNotFound(NotFound):
    code = "data_subject_request_not_found"


class InvalidLead(ValidationFailed):
    code = "invalid_lead"


class LeadSuppressed(Conflict):
    code = "lead_suppressed"


class CampaignNameTaken(Conflict):
    code = "campaign_name_taken"


class MeetingOverlaps(Conflict):
    code = "meeting_overlaps"


class DuplicateLead(Conflict):
    """Another live lead of the tenant has the same normalised e-mail or phone."""

    code = "duplicate_lead"

    def __init__(self, existing_id: UUID, field: str) -> None:
        super().__init__(
            f"a lead with this {field} already exists",
            details=[{"existing_lead_id": str(existing_id), "field": field}],
        )
        self.existing_id = existing_id
        self.field = field


DUPLICATE_FIELDS = {
    "leads_tenant_email_normalized_key": "email",
    "leads_tenant_phone_e164_key": "phone",
}


def constraint_of(error: psycopg.Error) -> str | None:
    return error.diag.constraint_name


def map_violation(error: psycopg.errors.IntegrityError) -> Exception | None:
    """The domain error for a violated constraint this group owns, else None."""
    name = constraint_of(error)
    if name == "agendamentos_owner_no_overlap":
        return MeetingOverlaps("the owner already has a meeting at that time")
    if name == "campanhas_tenant_name_key":
        return CampaignNameTaken("a campaign with this name already exists")
    return None
