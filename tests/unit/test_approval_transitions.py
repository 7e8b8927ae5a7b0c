from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from lambdas.approvals import transitions
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
from lambdas.approvals.transitions import ApprovalState

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
REQUESTER = uuid.uuid4()


def _state(quorum: int = 1, **changes: object) -> ApprovalState:
    state = ApprovalState(
        status="pending",
        required_approvals=quorum,
        requested_by=REQUESTER,
        expires_at=NOW + timedelta(hours=1),
        escalate_at=NOW + timedelta(minutes=30),
    )
    return replace(state, **changes)  # type: ignore[arg-type]


def _decide(state: ApprovalState, decision: str = "approved", **kw: object) -> ApprovalState:
    args: dict[str, object] = {
        "decider": uuid.uuid4(),
        "can_decide": True,
        "decision": decision,
        "reason": "looks fine",
        "now": NOW,
    }
    args.update(kw)
    return transitions.decide(state, **args)  # type: ignore[arg-type]


def test_quorum_of_two_is_approved_only_after_the_second_approval() -> None:
    once = _decide(_state(quorum=2))
    assert once.status == "pending"
    assert once.approvals == 1
    twice = _decide(once)
    assert twice.status == "approved"
    assert twice.decided_at == NOW


def test_any_rejection_rejects() -> None:
    once = _decide(_state(quorum=3))
    assert _decide(once, "rejected").status == "rejected"


def test_self_approval_is_refused() -> None:
    with pytest.raises(SelfApproval):
        _decide(_state(), decider=REQUESTER)


def test_a_user_without_the_permission_is_refused() -> None:
    with pytest.raises(NotADecider):
        _decide(_state(), can_decide=False)


def test_an_expired_request_cannot_be_decided() -> None:
    with pytest.raises(ApprovalExpired):
        _decide(_state(), now=NOW + timedelta(hours=1))


def test_a_decided_request_cannot_be_decided_again() -> None:
    with pytest.raises(ApprovalNotPending):
        _decide(_decide(_state()))


def test_one_decision_per_decider() -> None:
    decider = uuid.uuid4()
    once = _decide(_state(quorum=2), decider=decider)
    with pytest.raises(AlreadyDecided):
        _decide(once, decider=decider)


@pytest.mark.parametrize("reason", ["", "   ", "x" * 2001])
def test_a_decision_needs_a_reason(reason: str) -> None:
    with pytest.raises(ReasonRequired):
        _decide(_state(), reason=reason)


def test_only_the_requester_cancels_a_pending_request() -> None:
    with pytest.raises(NotTheRequester):
        transitions.cancel(_state(), actor=uuid.uuid4(), now=NOW)
    with pytest.raises(NotTheRequester):
        transitions.cancel(_state(requested_by=None), actor=REQUESTER, now=NOW)
    canceled = transitions.cancel(_state(), actor=REQUESTER, now=NOW)
    assert canceled.status == "canceled"
    assert canceled.canceled_by == REQUESTER
    with pytest.raises(ApprovalNotPending):
        transitions.cancel(canceled, actor=REQUESTER, now=NOW)


def test_expiry_only_at_or_after_expires_at() -> None:
    with pytest.raises(InvalidTransition):
        transitions.expire(_state(), now=NOW)
    assert transitions.expire(_state(), now=NOW + timedelta(hours=1)).status == "expired"


def test_escalation_happens_once_after_escalate_at() -> None:
    with pytest.raises(InvalidTransition):
        transitions.escalate(_state(), now=NOW)
    later = NOW + timedelta(minutes=31)
    escalated = transitions.escalate(_state(), now=later)
    assert escalated.status == "pending"
    assert escalated.escalated_at == later
    with pytest.raises(InvalidTransition):
        transitions.escalate(escalated, now=later)


def test_what_the_sweeper_would_do() -> None:
    assert transitions.due(_state(), now=NOW) is None
    assert transitions.due(_state(), now=NOW + timedelta(minutes=30)) == "escalate"
    assert transitions.due(_state(), now=NOW + timedelta(hours=2)) == "expire"
    assert transitions.due(_state(status="approved"), now=NOW + timedelta(hours=2)) is None
