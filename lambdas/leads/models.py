"""Leads' records as the repositories return them and the services and routes use them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

LeadStatus = Literal[
    "new", "contacted", "qualified", "meeting_scheduled", "won", "lost", "opted_out"
]
LegalBasis = Literal["consent", "legitimate_interest"]
LeadSource = Literal["manual", "import", "form", "api", "agent", "referral"]
Entity = Literal["lead", "campaign", "interaction", "meeting"]


class LeadFields(BaseModel):
    """What a client may set on a lead (identifiers as given; the service normalises them)."""

    model_config = ConfigDict(extra="forbid")

    full_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    company: str | None = Field(default=None, max_length=200)
    company_tax_id: str | None = Field(default=None, max_length=40)
    job_title: str | None = Field(default=None, max_length=200)
    campanha_id: UUID | None = None
    assigned_to: UUID | None = None
    status: LeadStatus = "new"
    score: int | None = Field(default=None, ge=0, le=100)
    tags: list[str] = Field(default_factory=list, max_length=50)
    legal_basis: LegalBasis = "legitimate_interest"
    source: LeadSource = "manual"


EDITABLE_LEAD_FIELDS = frozenset(LeadFields.model_fields)


class Lead(LeadFields):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    tenant_id: UUID
    email_normalized: str | None = None
    phone_e164: str | None = None
    consent_status: str
    version: int
    deleted_at: datetime | None = None
    anonymized_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    def fields(self) -> LeadFields:
        return LeadFields.model_validate(self.model_dump(include=set(EDITABLE_LEAD_FIELDS)))


# A lead write of a sync batch: id, fields, normalised e-mail and phone.
LeadWrite = tuple[UUID, LeadFields, str | None, str | None]


class LeadFilters(BaseModel):
    status: LeadStatus | None = None
    campanha_id: UUID | None = None
    assigned_to: UUID | None = None
    tags: list[str] = Field(default_factory=list)
    created_from: datetime | None = None
    created_to: datetime | None = None
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    q: str | None = Field(default=None, min_length=2, max_length=100)


class LeadPage(BaseModel):
    items: list[Lead]
    next_cursor: str | None


class Campaign(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    name: str
    description: str
    channel: str
    status: str
    version: int
    deleted_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class Interaction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    lead_id: UUID
    channel: str
    direction: str
    kind: str
    content: str | None
    occurred_at: datetime
    version: int


class Meeting(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    lead_id: UUID
    owner_user_id: UUID | None
    scheduled_for: datetime
    ends_at: datetime
    duration_minutes: int
    status: str
    version: int
    deleted_at: datetime | None = None


class Change(BaseModel):
    entity: Entity
    id: UUID
    op: Literal["upsert", "delete"]
    version: int
    data: dict[str, Any] | None


class ChangesPage(BaseModel):
    changes: list[Change]
    cursor: str
    has_more: bool
    resync_required: bool = False


@dataclass(frozen=True)
class FeedPage:
    """A page of the changes feed as PostgreSQL printed it: ``changes_json`` is a JSON array of
    ``Change`` objects; ``last`` the position of its last row (None: the page is empty)."""

    changes_json: str
    has_more: bool
    last: tuple[int, int] | None


class MutationResult(BaseModel):
    client_mutation_id: str
    outcome: Literal["applied", "conflict", "rejected"]
    id: UUID | None = None
    version: int | None = None
    conflict_id: UUID | None = None
    reason: str | None = None
    replayed: bool = False


class Conflict(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    entity: Entity
    entity_id: UUID
    kind: Literal["update_update", "update_delete", "create_create"]
    mine: dict[str, Any]
    theirs: dict[str, Any]
    base_version: int | None
    status: Literal["open", "resolved"]
    resolution: str | None


@dataclass(frozen=True)
class NewConflict:
    """A conflict a sync batch stores (its id chosen by the service, so a batch stores all of
    its conflicts in one statement)."""

    id: UUID
    mutation_id: UUID | None
    entity: Entity
    entity_id: UUID
    kind: Literal["update_update", "update_delete", "create_create"]
    mine: dict[str, Any]
    theirs: dict[str, Any]
    base_version: int | None


class LeadPatch(BaseModel):
    """A partial update: only the fields sent change (null clears an optional field)."""

    model_config = ConfigDict(extra="forbid")

    full_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=40)
    company: str | None = Field(default=None, max_length=200)
    company_tax_id: str | None = Field(default=None, max_length=40)
    job_title: str | None = Field(default=None, max_length=200)
    campanha_id: UUID | None = None
    assigned_to: UUID | None = None
    status: LeadStatus | None = None
    score: int | None = Field(default=None, ge=0, le=100)
    tags: list[str] | None = Field(default=None, max_length=50)
    legal_basis: LegalBasis | None = None
    source: LeadSource | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class SyncResponse(BaseModel):
    results: list[MutationResult]


class ConflictList(BaseModel):
    items: list[Conflict]


class ResolveConflictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resolution: Literal["keep_mine", "keep_theirs", "merged"]
    merged: dict[str, Any] | None = None


ConsentChannel = Literal["form", "email", "phone", "whatsapp", "in_person", "import", "api"]


class ConsentRequest(BaseModel):
    """Proof of a consent (Art. 8): the purposes, the exact text version shown, the channel
    and, when known, the IP it came from (kept as an HMAC)."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["granted", "withdrawn", "denied"]
    channel: ConsentChannel
    purposes: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=20
    )
    text_version: str | None = Field(default=None, min_length=1, max_length=100)
    ip: str | None = Field(default=None, max_length=45)


class ConsentEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    lead_id: UUID
    action: str
    channel: str
    purposes: list[str]
    text_version: str | None
    occurred_at: datetime


class ConsentProof(ConsentEvent):
    """One entry of a lead's consent history (Art. 8): who recorded it (none for the lead's own
    form submission), and the HMAC-SHA256 of the IP it came from under the tenant's suppression
    key (a claimed IP can be checked against it; erasure clears it)."""

    recorded_by: UUID | None
    ip_hmac: str | None


class ConsentHistory(BaseModel):
    lead_id: UUID
    items: list[ConsentProof]


class DsrRequest(BaseModel):
    """A data subject request made to the tenant (Art. 18): access/portability returns the
    export, correction applies ``changes``, erasure anonymises (``suppress`` keeps the person
    off future imports and outreach as digests)."""

    model_config = ConfigDict(extra="forbid")

    lead_id: UUID
    kind: Literal["access", "correction", "erasure"]
    changes: dict[str, Any] | None = None
    suppress: bool = True


class DataSubjectRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    lead_id: UUID | None
    kind: Literal["access", "correction", "erasure"]
    status: Literal["open", "in_progress", "completed", "rejected"]
    channel: str
    due_at: datetime
    completed_at: datetime | None
    created_at: datetime


class DsrResponse(BaseModel):
    request: DataSubjectRequest
    export: dict[str, Any] | None = None


class DsrList(BaseModel):
    items: list[DataSubjectRequest]


class DailyMetric(BaseModel):
    model_config = ConfigDict(extra="ignore")

    campanha_id: UUID | None
    day: date
    leads_created: int
    contacted: int
    replied: int
    interactions: int
    meetings_scheduled: int
    conversions: int


class MetricsResponse(BaseModel):
    items: list[DailyMetric]


class ProcessingActivity(BaseModel):
    purpose: str
    legal_bases: list[str]
    data_categories: list[str]
    retention: str
    recipients: list[str]


class ProcessingRecord(BaseModel):
    """The tenant's record of processing operations (LGPD Art. 37) for leads."""

    controller_tenant_id: UUID
    activities: list[ProcessingActivity]
    legal_bases_in_use: dict[str, int]
    consent_purposes_in_use: list[str]
    generated_at: datetime


CampaignChannel = Literal["email", "whatsapp", "linkedin", "phone", "multichannel"]
CampaignStatus = Literal["draft", "active", "paused", "completed", "archived"]


class CreateCampaignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    channel: CampaignChannel
    description: str = Field(default="", max_length=2000)


class CampaignStatusRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: CampaignStatus


class CampaignList(BaseModel):
    items: list[Campaign]


class CampaignNumbers(BaseModel):
    """A campaign with its live leads by status and the totals of its daily metrics."""

    campaign: Campaign
    leads_by_status: dict[str, int]
    leads: int


InteractionChannel = Literal["email", "whatsapp", "linkedin", "phone", "meeting", "other"]


class InteractionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: InteractionChannel
    direction: Literal["inbound", "outbound"]
    kind: str = Field(default="message", pattern=r"^[a-z][a-z_]{0,39}$")
    content: str | None = Field(default=None, max_length=10_000)
    occurred_at: datetime | None = None


class Timeline(BaseModel):
    items: list[Interaction]


class ScheduleMeetingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scheduled_for: datetime
    duration_minutes: int = Field(default=30, ge=5, le=480)
    owner_user_id: UUID | None = None


class RescheduleMeetingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scheduled_for: datetime
    duration_minutes: int = Field(default=30, ge=5, le=480)


class MeetingView(Meeting):
    """A meeting with its times also shown in the tenant's time zone."""

    time_zone: str
    scheduled_for_local: str
    ends_at_local: str


# ---- the batched push (POST /api/leads/sync) --------------------------------------------------


def _not_null(value: Any) -> Any:
    # runs only on a value sent (pydantic skips validators on defaults): a field left out of an
    # update keeps the server's value, an explicit null for it is refused
    if value is None:
        raise ValueError("may not be null")
    return value


class CampaignFields(BaseModel):
    """What an offline client may set on a campaign (the name is its natural key). A create
    needs ``name`` and ``channel``; an update writes only the fields it sends."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    channel: CampaignChannel | None = None
    description: str = Field(default="", max_length=2000)
    status: CampaignStatus = "draft"

    _sent_not_null = field_validator("name", "channel")(_not_null)


EDITABLE_CAMPAIGN_FIELDS = frozenset(CampaignFields.model_fields)


class InteractionFields(InteractionRequest):
    """An interaction appended from an offline client (interactions are never edited)."""

    lead_id: UUID


class MeetingFields(BaseModel):
    """A meeting from an offline client: ``lead_id`` (required to create), ``scheduled_for``
    (required to create) and ``owner_user_id`` (default: the caller) are set when it is created;
    an update moves the time or the length, whichever it sends."""

    model_config = ConfigDict(extra="forbid")

    lead_id: UUID | None = None
    owner_user_id: UUID | None = None
    scheduled_for: datetime | None = None
    duration_minutes: int = Field(default=30, ge=5, le=480)

    _sent_not_null = field_validator("scheduled_for")(_not_null)


EDITABLE_MEETING_FIELDS = frozenset({"scheduled_for", "duration_minutes"})

# What keep_mine and merged may write, per entity (an interaction is never edited).
EDITABLE_FIELDS: dict[str, frozenset[str]] = {
    "lead": EDITABLE_LEAD_FIELDS,
    "campaign": EDITABLE_CAMPAIGN_FIELDS,
    "interaction": frozenset(),
    "meeting": EDITABLE_MEETING_FIELDS,
}


class _MutationBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_mutation_id: str = Field(min_length=1, max_length=200)
    op: Literal["create", "update", "delete"]
    id: UUID
    base_version: int | None = Field(default=None, ge=1)


class Mutation(_MutationBase):
    """A lead mutation (``entity`` may be left out: lead is the default). A create takes the
    fields' defaults for what it leaves out; an update writes only the fields it sends, as
    PATCH does (an explicit null clears a field that may be empty)."""

    entity: Literal["lead"] = "lead"
    fields: LeadFields | None = None


class CampaignMutation(_MutationBase):
    """create (``name`` and ``channel`` required), update (the fields sent only) or delete
    (soft) a campaign."""

    entity: Literal["campaign"]
    fields: CampaignFields | None = None

    @model_validator(mode="after")
    def _create_is_complete(self) -> CampaignMutation:
        fields = self.fields
        if self.op == "create" and fields is not None and None in (fields.name, fields.channel):
            raise ValueError("a campaign's create needs its name and channel")
        return self


class InteractionMutation(_MutationBase):
    """create only: an update or delete is rejected (``interactions_are_append_only``)."""

    entity: Literal["interaction"]
    fields: InteractionFields | None = None


class MeetingMutation(_MutationBase):
    """create (schedule; ``scheduled_for`` required), update (reschedule: the time or the length
    it sends) or delete (cancel); an overlap with the owner's other meetings is rejected
    (``meeting_overlaps``)."""

    entity: Literal["meeting"]
    fields: MeetingFields | None = None

    @model_validator(mode="after")
    def _create_is_complete(self) -> MeetingMutation:
        if self.op == "create" and self.fields is not None and self.fields.scheduled_for is None:
            raise ValueError("a meeting's create needs scheduled_for")
        return self


SyncMutation = Mutation | CampaignMutation | InteractionMutation | MeetingMutation


def _entity_of(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("entity", "lead"))
    return str(getattr(value, "entity", "lead"))


AnyMutation = Annotated[
    Annotated[Mutation, Tag("lead")]
    | Annotated[CampaignMutation, Tag("campaign")]
    | Annotated[InteractionMutation, Tag("interaction")]
    | Annotated[MeetingMutation, Tag("meeting")],
    Discriminator(_entity_of),
]


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")
    mutations: list[AnyMutation] = Field(min_length=1, max_length=1000)

    def __repr__(self) -> str:
        # Powertools formats the route's arguments into a debug message whether or not debug
        # logging is on: pydantic's repr of 1,000 mutations cost a tenth of a push.
        return f"SyncRequest(device_id={self.device_id!r}, mutations=<{len(self.mutations)}>)"
