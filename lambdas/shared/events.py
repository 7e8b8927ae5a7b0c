"""The catalog of domain events: one pydantic payload model per event name and version.

Convention (docs/events.md is generated from this module and checked against it by a test):

- The name is ``<aggregate>.<past-tense verb>`` in lower snake case, e.g. ``agent.activated``.
- The payload version starts at 1. A change a consumer could miss (a field removed, renamed or
  retyped, a meaning changed) is a new version registered beside the old one; adding an optional
  field is not. Producers emit the latest version; consumers accept every registered one.
- Payloads hold ids and non-personal fields only (no names, e-mails, phones, free text): events
  leave PostgreSQL and are kept by consumers, where LGPD erasure cannot reach them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationError


class EventPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentActivatedV1(EventPayload):
    agent_id: UUID
    source: Literal["plan", "trial"]
    activated_by: UUID | None


class AgentDeactivatedV1(EventPayload):
    agent_id: UUID


class SubscriptionCreatedV1(EventPayload):
    subscription_id: UUID
    plan_id: UUID
    billing_interval: Literal["month", "year"]
    status: str


class SubscriptionPlanChangedV1(EventPayload):
    subscription_id: UUID
    from_plan_id: UUID
    to_plan_id: UUID
    billing_interval: Literal["month", "year"]


class SubscriptionCanceledV1(EventPayload):
    subscription_id: UUID
    plan_id: UUID
    canceled_at: datetime


class TrialStartedV1(EventPayload):
    trial_id: UUID
    agent_id: UUID | None
    subnucleo_id: UUID | None
    expires_at: datetime
    max_usage: int


class TrialUsedV1(EventPayload):
    trial_id: UUID
    usage_count: int
    remaining_usage: int


class PaymentEventAppliedV1(EventPayload):
    payment_event_id: UUID
    provider: str
    provider_event_type: str
    subscription_id: UUID | None
    amount: Decimal | None
    currency: str | None


class PaymentEventIgnoredV1(PaymentEventAppliedV1):
    reason: str


class PaymentEventReceivedV1(PaymentEventAppliedV1):
    reason: str


class CommercialRequestCreatedV1(EventPayload):
    """A public request for a commercial proposal; its contact data stays in PostgreSQL."""

    commercial_request_id: UUID
    plan_id: UUID | None
    subnucleo_ids: list[UUID]


class MembershipGrantedV1(EventPayload):
    user_id: UUID
    role: str


class PolicyRuleChangedV1(EventPayload):
    rule_id: UUID
    version: int
    effect: Literal["allow", "block", "require_approval"]
    active: bool


class PolicySettingsChangedV1(EventPayload):
    default_effect: Literal["allow", "block", "require_approval"]
    default_required_approvals: int
    changed_by: UUID | None


class PolicyEvaluationV1(EventPayload):
    """An evaluation by its ids and verdict; the subject's content never leaves PostgreSQL."""

    evaluation_id: UUID
    subject_kind: str
    subject_id: str | None
    rule_id: UUID | None
    rule_version: int | None
    verdict: Literal["allow", "block", "require_approval"]
    inputs_hash: str


class ApprovalCreatedV1(EventPayload):
    approval_id: UUID
    subject_kind: str
    subject_id: str
    action_type: str
    evaluation_id: UUID | None
    required_approvals: int
    requester_kind: Literal["user", "agent"]
    requested_by: UUID | None
    agent_id: UUID | None
    expires_at: datetime


class ApprovalDecidedV1(EventPayload):
    approval_id: UUID
    decision_id: UUID
    decided_by: UUID
    decision: Literal["approved", "rejected"]
    status: str
    approvals: int
    required_approvals: int


class ApprovalCanceledV1(EventPayload):
    approval_id: UUID
    canceled_by: UUID


class ApprovalExpiredV1(EventPayload):
    approval_id: UUID
    requested_by: UUID | None


class ApprovalEscalatedV1(EventPayload):
    approval_id: UUID
    escalation_role: str | None


class LeadCreatedV1(EventPayload):
    """A lead was created (its personal data stays in PostgreSQL)."""

    version: int
    status: str
    source: str
    legal_basis: str
    campanha_id: UUID | None
    assigned_to: UUID | None


class LeadUpdatedV1(EventPayload):
    version: int
    status: str
    changed_fields: list[str]


class LeadDeletedV1(EventPayload):
    version: int


class LeadConsentRecordedV1(EventPayload):
    consent_event_id: UUID
    action: Literal["granted", "withdrawn", "denied"]
    channel: str
    purposes: list[str]
    text_version: str | None


class DataSubjectRequestCompletedV1(EventPayload):
    """An LGPD request (Art. 18) was carried out; the aggregate id is the request's."""

    lead_id: UUID
    kind: Literal["access", "correction", "erasure"]
    channel: str
    suppressed: bool | None = None
    changed_fields: list[str] | None = None


class SyncBatchAppliedV1(EventPayload):
    """A batch pushed by an offline client (aggregate id: the batch id)."""

    mutations: int
    applied: int
    conflicts: int
    rejected: int
    replayed: int


class SyncConflictResolvedV1(EventPayload):
    """``lead_id`` is set for a lead's conflict; ``entity``/``entity_id`` name the row of any."""

    lead_id: UUID | None = None
    entity: Literal["lead", "campaign", "interaction", "meeting"] = "lead"
    entity_id: UUID | None = None
    resolution: Literal["keep_mine", "keep_theirs", "merged"]
    version: int | None


class CampaignChangedV1(EventPayload):
    """A campaign was created, changed status or was deleted (aggregate id: the campaign)."""

    version: int
    status: str
    channel: str


class InteractionRecordedV1(EventPayload):
    lead_id: UUID
    channel: str
    direction: Literal["inbound", "outbound"]
    kind: str


class MeetingChangedV1(EventPayload):
    """A meeting was scheduled, rescheduled, canceled or completed (times, never notes)."""

    lead_id: UUID
    owner_user_id: UUID | None
    version: int
    status: str
    scheduled_for: datetime
    duration_minutes: int


class MembershipInvitedV1(EventPayload):
    """No e-mail address: the user id points at the users row, where erasure reaches it."""

    user_id: UUID
    role: str
    invited_by: UUID
    account_created: bool


class MembershipRoleChangedV1(EventPayload):
    user_id: UUID
    from_role: str
    to_role: str
    changed_by: UUID


class MembershipRevokedV1(EventPayload):
    user_id: UUID
    role: str
    removed_by: UUID
    canceled_approval_requests: list[UUID]
    withdrawn_decisions: list[UUID]


class LeadOutreachSentV1(EventPayload):
    outreach_id: UUID
    lead_id: UUID
    interaction_id: UUID
    purpose: str
    evaluation_id: UUID


class LeadFormCreatedV1(EventPayload):
    form_id: UUID
    consent_text_version: str
    purposes: list[str]


class FormSubmissionReceivedV1(EventPayload):
    submission_id: UUID
    form_id: UUID
    lead_id: UUID
    lead_created: bool
    consent_text_version: str


class LeadImportRequestedV1(EventPayload):
    import_id: UUID
    legal_basis: str


class LeadImportFinishedV1(EventPayload):
    import_id: UUID
    status: Literal["completed", "rejected"]
    total_rows: int
    imported_rows: int
    rejected_rows: int


class ChatSessionChangedV1(EventPayload):
    session_id: UUID


class ChatMessageAnsweredV1(EventPayload):
    """An answer by its ids and token counts; neither the question nor the answer leaves."""

    answer_id: UUID
    session_id: UUID
    question_id: UUID
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    citations: int


class ChatMessageRatedV1(EventPayload):
    answer_id: UUID
    feedback_id: UUID
    rating: int


class DocumentUploadRequestedV1(EventPayload):
    document_id: UUID
    content_type: str


@dataclass(frozen=True)
class EventSpec:
    name: str
    version: int
    aggregate_type: str
    payload: type[EventPayload]
    description: str


CATALOG: Final[tuple[EventSpec, ...]] = (
    EventSpec("agent.activated", 1, "agent", AgentActivatedV1,
              "An agent was switched on for the tenant (aggregate id: the agent id)."),
    EventSpec("agent.deactivated", 1, "agent", AgentDeactivatedV1,
              "An agent was switched off for the tenant."),
    EventSpec("subscription.created", 1, "subscription", SubscriptionCreatedV1,
              "The tenant subscribed to a plan."),
    EventSpec("subscription.plan_changed", 1, "subscription", SubscriptionPlanChangedV1,
              "The tenant's subscription moved to another plan or billing interval."),
    EventSpec("subscription.canceled", 1, "subscription", SubscriptionCanceledV1,
              "The tenant canceled its subscription."),
    EventSpec("trial.started", 1, "trial", TrialStartedV1,
              "A trial of an agent or a subnúcleo started."),
    EventSpec("trial.used", 1, "trial", TrialUsedV1, "One use of a trial was recorded."),
    EventSpec("payment.event_applied", 1, "payment_event", PaymentEventAppliedV1,
              "A verified payment-provider webhook changed the tenant's billing state."),
    EventSpec("payment.event_ignored", 1, "payment_event", PaymentEventIgnoredV1,
              "A verified webhook was recorded and changed nothing: an unhandled type, no "
              "matching subscription, a canceled one or an older event (`reason` says which)."),
    EventSpec("payment.event_received", 1, "payment_event", PaymentEventReceivedV1,
              "A verified webhook was recorded, but its state must be fetched from the provider "
              "before it can change anything (a Mercado Pago notification)."),
    EventSpec("commercial_request.created", 1, "commercial_request", CommercialRequestCreatedV1,
              "A prospect asked for a commercial proposal (platform event: no tenant)."),
    EventSpec("membership.granted", 1, "membership", MembershipGrantedV1,
              "A user was given a role in the tenant (aggregate id: the user id)."),
    EventSpec("policy_rule.created", 1, "policy_rule", PolicyRuleChangedV1,
              "Version 1 of a policy rule was stored (aggregate id: the rule id)."),
    EventSpec("policy_rule.updated", 1, "policy_rule", PolicyRuleChangedV1,
              "A policy rule got a new version; earlier versions stay."),
    EventSpec("policy_rule.deactivated", 1, "policy_rule", PolicyRuleChangedV1,
              "A policy rule stopped being evaluated (a new, inactive version)."),
    EventSpec("policy_settings.changed", 1, "policy_settings", PolicySettingsChangedV1,
              "The tenant's default effect (when no rule matches) changed (aggregate id: the "
              "tenant's policy settings row)."),
    EventSpec("policy_evaluation.blocked", 1, "policy_evaluation", PolicyEvaluationV1,
              "The gate blocked a sensitive action (aggregate id: the evaluation id)."),
    EventSpec("policy_evaluation.simulated", 1, "policy_evaluation", PolicyEvaluationV1,
              "A dry run evaluated a subject against the tenant's rules; nothing was gated."),
    EventSpec("approval.created", 1, "approval", ApprovalCreatedV1,
              "A sensitive action waits for human approval (aggregate id: the request id)."),
    EventSpec("approval.decided", 1, "approval", ApprovalDecidedV1,
              "A member approved or rejected a request; status says where it stands now."),
    EventSpec("approval.canceled", 1, "approval", ApprovalCanceledV1,
              "The requester withdrew a pending request."),
    EventSpec("approval.expired", 1, "approval", ApprovalExpiredV1,
              "A pending request passed its expiry undecided (the sweeper)."),
    EventSpec("approval.escalated", 1, "approval", ApprovalEscalatedV1,
              "A pending request passed its escalation time (the sweeper)."),
    EventSpec("lead.created", 1, "lead", LeadCreatedV1,
              "A lead was created in the tenant (aggregate id: the lead id)."),
    EventSpec("lead.updated", 1, "lead", LeadUpdatedV1,
              "A lead's fields changed (names of the changed fields, never their values)."),
    EventSpec("lead.deleted", 1, "lead", LeadDeletedV1,
              "A lead was soft-deleted (purged 30 days later)."),
    EventSpec("lead.consent_recorded", 1, "lead", LeadConsentRecordedV1,
              "A consent was granted, withdrawn or denied for a lead (LGPD Art. 8)."),
    EventSpec("data_subject_request.completed", 1, "data_subject_request",
              DataSubjectRequestCompletedV1,
              "An LGPD data subject request (access, correction, erasure) was carried out."),
    EventSpec("sync.batch_applied", 1, "sync_batch", SyncBatchAppliedV1,
              "An offline client's batch of mutations was applied (counts only; each applied "
              "campaign, interaction and meeting change also has its own event)."),
    EventSpec("sync_conflict.resolved", 1, "sync_conflict", SyncConflictResolvedV1,
              "A stored sync conflict was resolved (keep_mine, keep_theirs or merged)."),
    EventSpec("campaign.created", 1, "campaign", CampaignChangedV1,
              "A prospecting campaign was created."),
    EventSpec("campaign.status_changed", 1, "campaign", CampaignChangedV1,
              "A campaign moved to another status (draft, active, paused, completed, archived)."),
    EventSpec("campaign.updated", 1, "campaign", CampaignChangedV1,
              "A campaign's name, description, channel or status changed (offline sync)."),
    EventSpec("campaign.deleted", 1, "campaign", CampaignChangedV1,
              "A campaign was soft-deleted."),
    EventSpec("interaction.recorded", 1, "interaction", InteractionRecordedV1,
              "An interaction was appended to a lead's timeline (no content)."),
    EventSpec("meeting.scheduled", 1, "meeting", MeetingChangedV1, "A meeting was scheduled."),
    EventSpec("meeting.rescheduled", 1, "meeting", MeetingChangedV1,
              "A meeting moved to another time or length."),
    EventSpec("meeting.canceled", 1, "meeting", MeetingChangedV1, "A meeting was canceled."),
    EventSpec("meeting.completed", 1, "meeting", MeetingChangedV1, "A meeting took place."),
    EventSpec("membership.invited", 1, "membership", MembershipInvitedV1,
              "A tenant admin invited a user by e-mail with a role (aggregate id: the user id)."),
    EventSpec("membership.role_changed", 1, "membership", MembershipRoleChangedV1,
              "A tenant admin changed a member's role."),
    EventSpec("membership.revoked", 1, "membership", MembershipRevokedV1,
              "A tenant admin removed a member; their pending approval requests were canceled "
              "and their approvals on pending requests withdrawn."),
    EventSpec("lead.outreach_sent", 1, "lead", LeadOutreachSentV1,
              "An outreach e-mail left through SES (aggregate id: the lead id); no content."),
    EventSpec("lead_form.created", 1, "lead_form", LeadFormCreatedV1,
              "A public capture form was defined (aggregate id: the form id)."),
    EventSpec("form_submission.received", 1, "form_submission", FormSubmissionReceivedV1,
              "A public form submission with consent created or enriched a lead."),
    EventSpec("lead_import.requested", 1, "lead_import", LeadImportRequestedV1,
              "A CSV import was opened and its upload URL handed out."),
    EventSpec("lead_import.finished", 1, "lead_import", LeadImportFinishedV1,
              "A CSV import was applied whole (completed) or refused whole (rejected)."),
    EventSpec("chat_session.created", 1, "chat_session", ChatSessionChangedV1,
              "A user opened a chat session (aggregate id: the session id)."),
    EventSpec("chat_session.closed", 1, "chat_session", ChatSessionChangedV1,
              "A user closed a chat session; it takes no more messages."),
    EventSpec("chat_message.answered", 1, "chat_message", ChatMessageAnsweredV1,
              "The assistant answered an allowed question (aggregate id: the answer's id)."),
    EventSpec("chat_message.rated", 1, "chat_message", ChatMessageRatedV1,
              "A user rated an answer (1-5); the comment stays in PostgreSQL."),
    EventSpec("document.upload_requested", 1, "document", DocumentUploadRequestedV1,
              "A presigned upload of a knowledge-base original was issued (aggregate id: the "
              "document id the ingestion will store it under)."),
)  # fmt: skip

_BY_KEY: Final[dict[tuple[str, int], EventSpec]] = {(s.name, s.version): s for s in CATALOG}


class UnknownEvent(LookupError):
    """An event name and version the catalog does not register."""


class InvalidEventPayload(ValueError):
    """A payload that does not match its event's schema."""


def spec_for(name: str, version: int) -> EventSpec:
    try:
        return _BY_KEY[(name, version)]
    except KeyError:
        raise UnknownEvent(f"{name} v{version} is not in the event catalog") from None


def validated_payload(
    name: str, version: int, aggregate_type: str, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """The payload as JSON-ready data, after checking it against the catalog."""
    spec = spec_for(name, version)
    if spec.aggregate_type != aggregate_type:
        raise InvalidEventPayload(
            f"{name} belongs to aggregate {spec.aggregate_type!r}, not {aggregate_type!r}"
        )
    try:
        model = spec.payload.model_validate(dict(payload))
    except ValidationError as error:
        raise InvalidEventPayload(f"{name} v{version}: {error}") from error
    return model.model_dump(mode="json")
