"""The life of an approval request as pure transitions (no I/O).

They mirror the triggers of database/migrations/026_policies_approvals.sql, which are the
authority: the database refuses the same things whoever writes. This module lets services
answer without a round trip where they can, and documents the rules in one readable place.

    pending --decide(approve) x quorum--> approved
    pending --decide(reject)------------> rejected
    pending --expire (now >= expires_at)-> expired
    pending --cancel (by the requester)--> canceled
    pending --escalate (now >= escalate_at, once)--> pending, escalated
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal
from uuid import UUID

from lambdas.approvals.errors import (
    AlreadyDecided,
    ApprovalExpired,
    ApprovalNotPending,
    InvalidTransition,
    NotADecider,
    NotTheRequester,
    ReasonRequired,
    SelfApproval,
)

Status = Literal["pending", "approved", "rejected", "expired", "canceled"]
STATUSES: tuple[Status, ...] = ("pending", "approved", "rejected", "expired", "canceled")
Verdict = Literal["approved", "rejected"]
MAX_REASON_LENGTH = 2000


@dataclass(frozen=True)
class Vote:
    decider: UUID
    decision: Verdict
    reason: str
    at: datetime


@dataclass(frozen=True)
class ApprovalState:
    status: Status
    required_approvals: int
    requested_by: UUID | None  # None when an agent asked
    expires_at: datetime
    escalate_at: datetime | None = None
    escalated_at: datetime | None = None
    decided_at: datetime | None = None
    canceled_by: UUID | None = None
    votes: tuple[Vote, ...] = ()

    @property
    def approvals(self) -> int:
        return sum(1 for v in self.votes if v.decision == "approved")

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def check_reason(reason: str) -> str:
    """The reason as stored; blank or over-long reasons are refused."""
    text = reason.strip()
    if not text or len(text) > MAX_REASON_LENGTH:
        raise ReasonRequired(
            f"a decision needs a reason of 1 to {MAX_REASON_LENGTH} characters",
            details=[{"loc": ["body", "reason"], "msg": "reason is required"}],
        )
    return text


def _pending(state: ApprovalState) -> None:
    if state.status != "pending":
        raise ApprovalNotPending(f"the approval request is already {state.status}")


def decide(
    state: ApprovalState,
    *,
    decider: UUID,
    can_decide: bool,
    decision: Verdict,
    reason: str,
    now: datetime,
) -> ApprovalState:
    """Record ``decider``'s vote. Any rejection rejects; approvals reaching the quorum
    approve; otherwise the request stays pending."""
    text = check_reason(reason)
    _pending(state)
    if state.is_expired(now):
        raise ApprovalExpired("the approval request has expired")
    if state.requested_by is not None and decider == state.requested_by:
        raise SelfApproval("a requester cannot decide their own request")
    if not can_decide:
        raise NotADecider("only members allowed to decide approvals in this tenant can decide")
    if any(v.decider == decider for v in state.votes):
        raise AlreadyDecided("this user has already decided this request")
    votes = (*state.votes, Vote(decider, decision, text, now))
    voted = replace(state, votes=votes)
    if decision == "rejected":
        return replace(voted, status="rejected", decided_at=now)
    if voted.approvals >= state.required_approvals:
        return replace(voted, status="approved", decided_at=now)
    return voted


def cancel(state: ApprovalState, *, actor: UUID, now: datetime) -> ApprovalState:
    """The requester withdraws a pending request."""
    _pending(state)
    if state.requested_by is None or actor != state.requested_by:
        raise NotTheRequester("only the requester can cancel an approval request")
    return replace(state, status="canceled", canceled_by=actor, decided_at=now)


def expire(state: ApprovalState, *, now: datetime) -> ApprovalState:
    _pending(state)
    if not state.is_expired(now):
        raise InvalidTransition("the approval request has not expired yet")
    return replace(state, status="expired", decided_at=now)


def escalate(state: ApprovalState, *, now: datetime) -> ApprovalState:
    """Mark a pending request past ``escalate_at`` as escalated (once)."""
    _pending(state)
    if state.escalated_at is not None:
        raise InvalidTransition("the approval request was already escalated")
    if state.escalate_at is None or now < state.escalate_at:
        raise InvalidTransition("the approval request is not due for escalation")
    return replace(state, escalated_at=now)


def due(state: ApprovalState, *, now: datetime) -> Literal["expire", "escalate"] | None:
    """What the sweeper would do with this request now, if anything."""
    if state.status != "pending":
        return None
    if state.is_expired(now):
        return "expire"
    if state.escalated_at is None and state.escalate_at is not None and now >= state.escalate_at:
        return "escalate"
    return None
