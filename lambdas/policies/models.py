"""Policy rules and evaluations as the API and the repositories exchange them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lambdas.policies.evaluator import Effect
from lambdas.policies.subject import Role, Subject, SubjectKind

MAX_QUORUM = 10


class RuleDraft(BaseModel):
    """What a rule version says (create and update take the whole draft)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    priority: int = Field(default=0, ge=-100_000, le=100_000)
    active: bool = True
    effect: Effect
    matcher: dict[str, Any]
    required_approvals: int | None = Field(default=None, ge=1, le=MAX_QUORUM)
    approval_ttl_s: int | None = Field(default=None, ge=60, le=30 * 24 * 3600)
    escalate_after_s: int | None = Field(default=None, gt=0)
    escalation_role: Role | None = None

    @model_validator(mode="after")
    def _approval_settings(self) -> RuleDraft:
        if self.effect == "require_approval":
            if self.required_approvals is None:
                raise ValueError("a require_approval rule states required_approvals")
        elif any(
            value is not None
            for value in (
                self.required_approvals,
                self.approval_ttl_s,
                self.escalate_after_s,
                self.escalation_role,
            )
        ):
            raise ValueError("approval settings only apply to require_approval rules")
        if (
            self.escalate_after_s is not None
            and self.approval_ttl_s is not None
            and self.escalate_after_s >= self.approval_ttl_s
        ):
            raise ValueError("escalate_after_s must be shorter than approval_ttl_s")
        return self


class RuleVersion(BaseModel):
    """One stored version of a rule."""

    rule_id: UUID
    version: int
    is_current: bool
    name: str
    description: str
    priority: int
    active: bool
    effect: Effect
    matcher: dict[str, Any]
    required_approvals: int | None
    approval_ttl_s: int | None
    escalate_after_s: int | None
    escalation_role: str | None
    created_by: UUID | None
    created_at: datetime


class PolicyDefault(BaseModel):
    """The tenant's effect when no rule matches (``allow`` until set), and the quorum a
    ``require_approval`` default asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effect: Effect = "allow"
    required_approvals: int = Field(default=1, ge=1, le=MAX_QUORUM)


class EvaluationRecord(BaseModel):
    id: UUID
    subject_kind: str
    subject_id: str | None
    rule_id: UUID | None
    rule_version: int | None
    verdict: Effect
    reason: str
    inputs_hash: str
    dry_run: bool
    requested_by: UUID | None
    agent_id: UUID | None
    evaluated_at: datetime


class RuleUpdate(RuleDraft):
    """A rule's next version; with ``expected_version``, refused (409) if another edit came
    first."""

    expected_version: int | None = Field(default=None, ge=1)

    def draft(self) -> RuleDraft:
        return RuleDraft.model_validate(self.model_dump(exclude={"expected_version"}))


class DryRunRequest(BaseModel):
    """A subject to evaluate without gating it. ``text`` is read, never stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: SubjectKind
    id: str | None = Field(default=None, min_length=1, max_length=200)
    text: str = Field(default="", max_length=100_000)
    agent_id: UUID | None = None
    agent_category: str | None = Field(default=None, min_length=1, max_length=100)
    action_type: str | None = Field(default=None, min_length=1, max_length=100)
    estimated_tokens: int | None = Field(default=None, ge=0, le=10_000_000)
    requester_roles: list[Role] = Field(default_factory=list, max_length=3)

    def subject(self) -> Subject:
        return Subject.model_validate(
            self.model_dump() | {"requester_roles": frozenset(self.requester_roles)}
        )
