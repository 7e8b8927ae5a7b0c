"""Approval requests and decisions as the API and the repositories exchange them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from lambdas.approvals.transitions import Status, Verdict
from lambdas.policies.subject import Subject, SubjectKind

MAX_SUBJECT_TEXT = 100_000

RequesterKind = Literal["user", "agent"]


class NewApprovalRequest(BaseModel):
    """What a request asks. ``payload`` describes the action; it must not hold the content
    that the policy protects (e.g. the message text), which stays where it was written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject_kind: str = Field(pattern=r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")
    subject_id: str = Field(min_length=1, max_length=200)
    action_type: str = Field(min_length=1, max_length=100)
    summary: str = Field(min_length=1, max_length=500)
    payload: dict[str, Any] = Field(default_factory=dict)
    requester_kind: RequesterKind = "user"
    requested_by: UUID | None = None
    agent_id: UUID | None = None
    evaluation_id: UUID | None = None
    required_approvals: int = Field(default=1, ge=1, le=10)
    expires_at: datetime
    escalate_at: datetime | None = None
    escalation_role: str | None = None


class DecisionRecord(BaseModel):
    id: UUID
    decided_by: UUID
    decision: Verdict
    reason: str
    decided_at: datetime


class EvaluationSummary(BaseModel):
    id: UUID
    rule_id: UUID | None
    rule_version: int | None
    verdict: str
    reason: str
    evaluated_at: datetime


class ApprovalRecord(BaseModel):
    id: UUID
    subject_kind: str | None
    subject_id: str | None
    action_type: str
    summary: str
    payload: dict[str, Any]
    status: Status = Field(
        description="pending, approved, rejected, expired or canceled; a pending request past "
        "its expires_at reads expired (it can no longer be decided) from that moment, before "
        "the sweeper records its expiry"
    )
    requester_kind: RequesterKind
    requested_by: UUID | None
    agent_id: UUID | None
    evaluation_id: UUID | None
    required_approvals: int
    approvals: int
    expires_at: datetime | None
    escalate_at: datetime | None
    escalation_role: str | None
    escalated_at: datetime | None
    decided_at: datetime | None
    canceled_by: UUID | None
    created_at: datetime
    decisions: list[DecisionRecord] = Field(default_factory=list)
    evaluation: EvaluationSummary | None = None


class DecisionOutcome(BaseModel):
    """A recorded decision and the request's state right after it."""

    decision_id: UUID
    request_id: UUID
    status: Status
    approvals: int
    required_approvals: int
    created_at: datetime  # when the request was opened
    decided_at: datetime | None  # when it was decided; None while it stays pending


class SweptRequest(BaseModel):
    """A request the sweeper expired or escalated."""

    tenant_id: UUID
    request_id: UUID
    change: Literal["expired", "escalated"]
    escalation_role: str | None
    requested_by: UUID | None


class ApprovalAsk(BaseModel):
    """``POST /api/approvals``: an agent or service of the tenant asks to perform an action.
    ``text`` is what the policies read (e.g. the message to send); it is evaluated and never
    stored. ``summary`` and ``payload`` describe the action to the deciders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject_kind: SubjectKind
    subject_id: str = Field(min_length=1, max_length=200)
    action_type: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_.:-]*$")
    summary: str = Field(min_length=1, max_length=500)
    text: str = Field(default="", max_length=MAX_SUBJECT_TEXT)
    agent_id: UUID | None = None
    agent_category: str | None = Field(default=None, min_length=1, max_length=100)
    estimated_tokens: int | None = Field(default=None, ge=0, le=10_000_000)
    payload: dict[str, Any] = Field(default_factory=dict)

    def subject(self) -> Subject:
        return Subject(
            kind=self.subject_kind,
            id=self.subject_id,
            text=self.text,
            agent_id=self.agent_id,
            agent_category=self.agent_category,
            action_type=self.action_type,
            estimated_tokens=self.estimated_tokens,
        )


class GateOutcome(BaseModel):
    """What the gate said about an asked action: ``allow`` (go ahead: no rule holds it, or an
    approved request covers it) or ``pending`` (``approval`` waits for its deciders)."""

    verdict: Literal["allow", "pending"]
    evaluation_id: UUID
    reason: str
    rule_id: UUID | None
    rule_version: int | None
    approval: ApprovalRecord | None


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Verdict
    reason: str = Field(min_length=1, max_length=2000)
