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
