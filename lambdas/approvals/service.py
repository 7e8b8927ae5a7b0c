"""Approval use cases: open, list, read, decide, cancel, and the sweeper's run.

The rules themselves are enforced by the database (migration 026); these functions validate
what they can without a round trip, write the in-app notifications, record each change (audit
row + outbox event), commit, and shape the answers (a decision is recorded and notified by the
store, in one call of ``decide_approval_v4``). Opening a request for a sensitive action goes
through the gate (``lambdas.shared.gate``); ``open_request`` is for callers that already
evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from pydantic import BaseModel

from lambdas.approvals.errors import (
    AlreadyDecided,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalNotPending,
    NotADecider,
    SelfApproval,
)
from lambdas.approvals.models import (
    ApprovalAsk,
    ApprovalRecord,
    DecisionOutcome,
    GateOutcome,
    NewApprovalRequest,
    SweptRequest,
)
from lambdas.approvals.transitions import Status, Verdict, check_reason
from lambdas.policies.subject import Subject
from lambdas.shared import cursors
from lambdas.shared.cursors import InvalidCursor
from lambdas.shared.gate import ActionBlocked, GateDecision
from lambdas.shared.scope import ChangeRecorder


class ApprovalStore(Protocol):
    def find_or_create(self, request: NewApprovalRequest) -> tuple[ApprovalRecord, bool]: ...

    def get(self, request_id: UUID) -> ApprovalRecord | None: ...

    def list_requests(
        self,
        *,
        status: Status | None = None,
        waiting_for: UUID | None = None,
        requested_by: UUID | None = None,
        before: tuple[datetime, UUID] | None = None,
        limit: int = 50,
    ) -> list[ApprovalRecord]: ...

    def decide(
        self, request_id: UUID, *, decider: UUID, decision: Verdict, reason: str
    ) -> DecisionOutcome | None:
        """The decision with its audit row and ``approval.decided`` event, and the requester's
        notification when it ends the request; None when the tenant has no such request."""
        ...

    def cancel(self, request_id: UUID, *, actor: UUID) -> ApprovalRecord | None: ...

    def notify_requested(self, request: ApprovalRecord) -> int: ...


class ApprovalsUow(ChangeRecorder, Protocol):
    @property
    def approvals(self) -> ApprovalStore: ...

    def authorize(
        self, subject: Subject, *, summary: str, payload: dict[str, Any], requested_by_agent: bool
    ) -> GateDecision: ...

    def decide_and_commit(
        self, request_id: UUID, *, decider: UUID, decision: Verdict, reason: str
    ) -> DecisionOutcome | None:
        """``ApprovalStore.decide`` as the unit's last write, committed with it."""
        ...

    def record_refusal(self, request_id: UUID, *, decider: UUID, code: str) -> None:
        """Audit a refused decision as ``denied``, in a transaction of its own: after the
        decision's transaction rolled back."""
        ...

    def commit(self) -> None: ...


class SweepStore(Protocol):
    def sweep(self, *, limit: int = 500) -> list[SweptRequest]: ...

    def record(self, changes: list[SweptRequest]) -> int: ...

    def notify(self, changes: list[SweptRequest]) -> int: ...


class SweepUow(Protocol):
    @property
    def sweeper(self) -> SweepStore: ...

    def commit(self) -> None: ...


# The decision refusals audited as ``denied`` (``decide``).
AUDITED_REFUSALS = (SelfApproval, NotADecider, ApprovalExpired, ApprovalNotPending, AlreadyDecided)

ApprovalsUowFactory = Callable[[], AbstractContextManager[ApprovalsUow]]
SweepUowFactory = Callable[[], AbstractContextManager[SweepUow]]


class ApprovalPage(BaseModel):
    items: list[ApprovalRecord]
    next_cursor: str | None


class OpenedRequest(BaseModel):
    request: ApprovalRecord
    created: bool


def encode_cursor(record: ApprovalRecord) -> str:
    return cursors.encode_cursor(f"{record.created_at.isoformat()}|{record.id}")


def _position(raw: str) -> tuple[datetime, UUID] | None:
    at, _, request_id = raw.partition("|")
    try:
        return datetime.fromisoformat(at), UUID(request_id)
    except ValueError:
        return None


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    raw = cursors.decode_cursor(cursor, valid=lambda raw: _position(raw) is not None)
    position = _position(raw)
    if position is None:
        raise InvalidCursor("cursor is not one this API returned")
    return position


def record_created(uow: ChangeRecorder, record: ApprovalRecord) -> None:
    """The audit row and ``approval.created`` event of a new request."""
    uow.record(
        "approval.created",
        aggregate_type="approval",
        aggregate_id=str(record.id),
        payload={
            "approval_id": record.id,
            "subject_kind": record.subject_kind,
            "subject_id": record.subject_id,
            "action_type": record.action_type,
            "evaluation_id": record.evaluation_id,
            "required_approvals": record.required_approvals,
            "requester_kind": record.requester_kind,
            "requested_by": record.requested_by,
            "agent_id": record.agent_id,
            "expires_at": record.expires_at,
        },
    )


def open_request(uow_factory: ApprovalsUowFactory, request: NewApprovalRequest) -> OpenedRequest:
    """The subject's pending approval request, opened if there is none yet; a new one is
    announced to everyone who may decide it."""
    with uow_factory() as uow:
        record, created = uow.approvals.find_or_create(request)
        if created:
            uow.approvals.notify_requested(record)
            record_created(uow, record)
            uow.commit()
        return OpenedRequest(request=record, created=created)


def request_approval(uow_factory: ApprovalsUowFactory, ask: ApprovalAsk) -> GateOutcome:
    """Put an asked action through the gate: ``allow`` at once, or ``pending`` with the
    subject's approval request (created, or the one already waiting). A blocked action is
    refused (``ActionBlocked``) after its evaluation and audit row are committed."""
    with uow_factory() as uow:
        decision = uow.authorize(
            ask.subject(),
            summary=ask.summary,
            payload=ask.payload,
            requested_by_agent=ask.agent_id is not None,
        )
        approval = uow.approvals.get(decision.approval_id) if decision.approval_id else None
        uow.commit()
    if decision.verdict == "blocked":
        raise ActionBlocked(
            f"blocked by the tenant's policies: {decision.reason}",
            details=[{"evaluation_id": str(decision.evaluation_id)}],
        )
    return GateOutcome(
        verdict=decision.verdict,
        evaluation_id=decision.evaluation_id,
        reason=decision.reason,
        rule_id=decision.rule_id,
        rule_version=decision.rule_version,
        approval=approval,
    )


def list_approvals(
    uow_factory: ApprovalsUowFactory,
    *,
    user_id: UUID,
    status: Status | None = None,
    waiting_for_me: bool = False,
    mine: bool = False,
    cursor: str | None = None,
    limit: int = 50,
) -> ApprovalPage:
    """A page of the tenant's requests, newest first: filtered by status, by those waiting for
    ``user_id``'s decision, or by those ``user_id`` asked for."""
    before = decode_cursor(cursor) if cursor else None
    with uow_factory() as uow:
        items = uow.approvals.list_requests(
            status=status,
            waiting_for=user_id if waiting_for_me else None,
            requested_by=user_id if mine else None,
            before=before,
            limit=limit + 1,
        )
    has_more = len(items) > limit
    page = items[:limit]
    return ApprovalPage(items=page, next_cursor=encode_cursor(page[-1]) if has_more else None)


def get_approval(uow_factory: ApprovalsUowFactory, request_id: UUID) -> ApprovalRecord:
    """One request with its decisions and the evaluation that caused it."""
    with uow_factory() as uow:
        record = uow.approvals.get(request_id)
    if record is None:
        raise ApprovalNotFound("approval request not found")
    return record


def decide(
    uow_factory: ApprovalsUowFactory,
    request_id: UUID,
    *,
    decider: UUID,
    decision: Verdict,
    reason: str,
) -> DecisionOutcome:
    """Approve or reject with a reason. The database refuses self-approval, deciders without
    ``approvals:decide``, decided or expired requests and second decisions, and applies the
    quorum; a refusal raises its domain error and nothing is written. The store records the
    decision with its audit row and ``approval.decided`` event, and notifies the requester when
    the request ends, in one call, committed in the same round trip (the route's one round trip
    after its opening). An unknown request commits nothing: the call wrote nothing.

    A refusal that matters for governance (``AUDITED_REFUSALS``: self-approval, a decider
    without the permission, a request expired or already ended, a second decision) is audited
    as ``denied`` after the rollback; an unknown request (another tenant's too) and an invalid
    reason are not."""
    text = check_reason(reason)
    try:
        with uow_factory() as uow:
            outcome = uow.decide_and_commit(
                request_id, decider=decider, decision=decision, reason=text
            )
    except AUDITED_REFUSALS as refused:
        # the unit rolled the decision back on leaving; the attempt is audited on its own
        uow.record_refusal(request_id, decider=decider, code=refused.code)
        raise
    if outcome is None:
        raise ApprovalNotFound("approval request not found")
    return outcome


def cancel(uow_factory: ApprovalsUowFactory, request_id: UUID, *, actor: UUID) -> ApprovalRecord:
    """The requester withdraws their pending request."""
    with uow_factory() as uow:
        record = uow.approvals.cancel(request_id, actor=actor)
        if record is None:
            raise ApprovalNotFound("approval request not found")
        uow.record(
            "approval.canceled",
            aggregate_type="approval",
            aggregate_id=str(request_id),
            payload={"approval_id": request_id, "canceled_by": actor},
        )
        uow.commit()
        return record


def sweep(uow_factory: SweepUowFactory, *, limit: int = 500) -> list[SweptRequest]:
    """Expire and escalate due requests across tenants (the scheduled sweeper's body; the
    caller holds the lease). Each change is notified and recorded in its tenant's audit chain
    and outbox, in the same transaction."""
    with uow_factory() as uow:
        changed = uow.sweeper.sweep(limit=limit)
        uow.sweeper.notify(changed)
        uow.sweeper.record(changed)
        uow.commit()
        return changed
