"""The gate every sensitive action passes: ``authorize(uow, subject)`` in the caller's
transaction, and ``recheck(uow, decision)`` after the action (docs/policies.md, "The gate").

    decision = gate.authorize(uow, Subject(kind="chat.message", id=str(message_id), text=text),
                              summary="Chat message to the assistant")
    if decision.verdict != "allow":
        ...  # commit (the evaluation, its audit row and the request are kept), answer
    ...      # the action
    gate.recheck(uow, decision)  # the approval it relied on is still approved
    uow.commit()

Or ``gate.enforce(...)``, which commits and raises ``ActionBlocked`` / ``ApprovalPending``
unless the verdict is allow.

What it writes, all in the caller's transaction:

- allow: the evaluation row (rule, version, verdict, inputs hash). Not audited: the action
  that follows is, and its audit row is the trail of an allowed action.
- block: the evaluation, an audit row and a ``policy_evaluation.blocked`` event.
- require_approval: the evaluation, and the subject's pending approval request (found, or
  created with an audit row, an ``approval.created`` event and notifications to the deciders).
  An approved request for the same subject, not past its expiry, makes the verdict allow; a
  rejected one makes it blocked.

The subject's text is read to evaluate and never stored: the evaluation keeps its SHA-256.

What it reads: the tenant's active rules and default, in one query, once per request (kept in
the request scope's memo); the rules compiled from them are reused across invocations while
their versions are unchanged (``lambdas.policies.compiled``). The allow path is that query and
the evaluation's INSERT. The policy engine (RE2, the evaluator, the repositories) is imported on
the first evaluation, so a handler that imports the gate does not load it at cold start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol
from uuid import UUID

from lambdas.shared.constants import (
    POLICY_DEFAULT_METRIC,
    POLICY_EVALUATIONS_METRIC,
    POLICY_RULE_HIT_METRIC,
)
from lambdas.shared.db import UnitOfWork
from lambdas.shared.errors import Conflict, Forbidden
from lambdas.shared.observability import metrics

if TYPE_CHECKING:
    from lambdas.approvals.models import ApprovalRecord
    from lambdas.policies.compiled import TenantPolicy
    from lambdas.policies.evaluator import Decision
    from lambdas.policies.models import EvaluationRecord
    from lambdas.policies.repository import PolicyRepository
    from lambdas.policies.subject import Subject

Verdict = Literal["allow", "blocked", "pending"]

DEFAULT_APPROVAL_TTL: Final = timedelta(hours=24)


class ActionBlocked(Forbidden):
    code = "policy_blocked"


class ApprovalPending(Conflict):
    code = "approval_pending"
    retry_later = True  # the same request goes through once the approval is granted


class ApprovalWithdrawn(Conflict):
    """The approval an action relied on is no longer approved (time of check vs time of use)."""

    code = "approval_withdrawn"


@dataclass(frozen=True)
class GateDecision:
    """What the gate said. ``approval_id`` names the request a pending or approved verdict
    rests on; ``reason`` says which rule decided (never the subject's content)."""

    verdict: Verdict
    evaluation_id: UUID
    reason: str
    rule_id: UUID | None = None
    rule_version: int | None = None
    approval_id: UUID | None = None
    approval_created: bool = False

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"


def authorize(
    uow: UnitOfWork,
    subject: Subject,
    *,
    summary: str,
    payload: Mapping[str, Any] | None = None,
    requested_by_agent: bool = False,
) -> GateDecision:
    """Evaluate ``subject`` against the tenant's active rules in ``uow``'s open transaction,
    persist the evaluation and act on the verdict (see the module docstring).

    The requester is the scope's caller (its role joins ``subject.requester_roles``);
    ``requested_by_agent`` marks the request as asked by ``subject.agent_id``. ``summary`` and
    ``payload`` describe the action on the approval request and must not hold the protected
    content. Nothing is committed: the caller commits.
    """
    tenant_id = _tenant(uow)
    principal = uow.scope.principal
    requester = principal.user_id if principal else None
    if principal is not None and principal.role not in subject.requester_roles:
        subject = subject.model_copy(
            update={"requester_roles": subject.requester_roles | {principal.role}}
        )
    # Imported on the first evaluation, not at cold start: the matcher's RE2 engine, the
    # evaluator and the approvals code are only needed once a sensitive action is authorized.
    from lambdas.policies.evaluator import inputs_hash  # noqa: PLC0415
    from lambdas.policies.repository import PolicyRepository  # noqa: PLC0415

    policies = PolicyRepository(uow.conn, tenant_id)
    decision = _tenant_policy(uow, policies).evaluate(subject)
    digest = inputs_hash(subject)
    evaluation = policies.record_evaluation(
        subject,
        decision,
        inputs_hash=digest,
        requested_by=requester,
        agent_id=subject.agent_id,
    )
    _count(decision)
    if decision.effect == "allow":
        return _decision("allow", evaluation, decision)
    if decision.effect == "block":
        _record_block(uow, evaluation)
        return _decision("blocked", evaluation, decision)
    return _require_approval(
        uow,
        subject,
        decision,
        evaluation,
        summary=summary,
        payload=payload or {},
        requester=requester,
        requested_by_agent=requested_by_agent,
    )


def enforce(
    uow: UnitOfWork,
    subject: Subject,
    *,
    summary: str,
    payload: Mapping[str, Any] | None = None,
    requested_by_agent: bool = False,
) -> GateDecision:
    """``authorize``, for a route whose action must not run unless allowed: on blocked or
    pending it commits what the gate wrote (evaluation, audit row, approval request) and raises
    ``ActionBlocked`` (403) or ``ApprovalPending`` (409, naming the request)."""
    decision = authorize(
        uow, subject, summary=summary, payload=payload, requested_by_agent=requested_by_agent
    )
    if decision.allowed:
        return decision
    uow.commit()
    details = [{"evaluation_id": str(decision.evaluation_id)}]
    if decision.verdict == "blocked":
        raise ActionBlocked(f"blocked by the tenant's policies: {decision.reason}", details=details)
    details[0]["approval_request_id"] = str(decision.approval_id)
    raise ApprovalPending(
        "the tenant's policies require human approval; retry once it is approved",
        details=details,
    )


def recheck(uow: UnitOfWork, decision: GateDecision) -> None:
    """After the action, before commit: the approval the allow verdict relied on is still
    approved (locked against concurrent change until the caller commits). Raises
    ``ApprovalWithdrawn`` otherwise, so the caller's transaction rolls the action back."""
    if decision.verdict != "allow" or decision.approval_id is None:
        return
    row = uow.conn.execute(
        """
        SELECT status, expires_at FROM alquimista_platform.approval_requests
        WHERE tenant_id = %s AND id = %s
        FOR SHARE
        """,
        (_tenant(uow), decision.approval_id),
    ).fetchone()
    if row is None or row["status"] != "approved":
        raise ApprovalWithdrawn("the approval this action relied on is no longer approved")


def _tenant_policy(uow: UnitOfWork, policies: PolicyRepository) -> TenantPolicy:
    """The tenant's policy, loaded once per request: kept in the request scope's memo, keyed
    by the tenant (the scope dies with the request; a policy write in it drops the entry)."""
    from lambdas.policies.compiled import TenantPolicy, memo_key  # noqa: PLC0415

    key = memo_key(_tenant(uow))
    policy = uow.scope.memo.get(key)
    if isinstance(policy, TenantPolicy) and policy.tenant_id == uow.tenant_id:
        return policy
    loaded = policies.load_policy()
    uow.scope.memo[key] = loaded
    return loaded


_EFFECT_SUFFIX: Final = {"allow": "Allow", "block": "Block", "require_approval": "RequireApproval"}


def _count(decision: Decision) -> None:
    """EMF: one evaluation of its effect, and whether a rule or the default decided."""
    metrics.add_metric(
        name=POLICY_EVALUATIONS_METRIC + _EFFECT_SUFFIX[decision.effect], unit="Count", value=1
    )
    hit = POLICY_RULE_HIT_METRIC if decision.rule is not None else POLICY_DEFAULT_METRIC
    metrics.add_metric(name=hit, unit="Count", value=1)


def _tenant(uow: UnitOfWork) -> UUID:
    if uow.tenant_id is None:
        raise RuntimeError("the gate runs in a tenant's unit of work")
    return uow.tenant_id


def _decision(
    verdict: Verdict,
    evaluation: EvaluationRecord,
    decision: Decision,
    approval: ApprovalRecord | None = None,
    *,
    created: bool = False,
    reason: str | None = None,
) -> GateDecision:
    return GateDecision(
        verdict=verdict,
        evaluation_id=evaluation.id,
        reason=reason or decision.reason,
        rule_id=decision.rule_id,
        rule_version=decision.rule_version,
        approval_id=approval.id if approval else None,
        approval_created=created,
    )


def _evaluation_payload(evaluation: EvaluationRecord) -> dict[str, Any]:
    return {
        "evaluation_id": evaluation.id,
        "subject_kind": evaluation.subject_kind,
        "subject_id": evaluation.subject_id,
        "rule_id": evaluation.rule_id,
        "rule_version": evaluation.rule_version,
        "verdict": evaluation.verdict,
        "inputs_hash": evaluation.inputs_hash,
    }


def _record_block(uow: UnitOfWork, evaluation: EvaluationRecord) -> None:
    uow.record(
        "policy_evaluation.blocked",
        aggregate_type="policy_evaluation",
        aggregate_id=str(evaluation.id),
        payload=_evaluation_payload(evaluation),
    )


def _require_approval(
    uow: UnitOfWork,
    subject: Subject,
    decision: Decision,
    evaluation: EvaluationRecord,
    *,
    summary: str,
    payload: Mapping[str, Any],
    requester: UUID | None,
    requested_by_agent: bool,
) -> GateDecision:
    from lambdas.approvals.models import NewApprovalRequest  # noqa: PLC0415
    from lambdas.approvals.repository import (  # noqa: PLC0415
        ApprovalRepository,
        ApprovalSweepRepository,
    )

    approvals = ApprovalRepository(uow.conn, _tenant(uow))
    subject_id = subject.id or str(evaluation.id)
    now = datetime.now(UTC)
    latest = approvals.latest_for_subject(subject.kind, subject_id)
    if latest is not None and latest.status == "expired":
        # Past its expiry but not swept yet (its row still pending, holding the subject's one
        # pending slot): expire it here as the sweeper would (status, notification, audit row
        # and event), so the subject gets a new request instead of the one nobody can decide.
        sweeper = ApprovalSweepRepository(uow.conn)
        expired = sweeper.expire(_tenant(uow), latest.id)
        sweeper.notify(expired)
        sweeper.record(expired)
    if latest is not None and latest.status == "approved" and _unexpired(latest, now):
        return _decision(
            "allow",
            evaluation,
            decision,
            latest,
            reason=f"approved by request {latest.id}; {decision.reason}",
        )
    if latest is not None and latest.status == "rejected":
        _record_block(uow, evaluation)
        return _decision(
            "blocked",
            evaluation,
            decision,
            latest,
            reason=f"approval request {latest.id} was rejected; {decision.reason}",
        )
    ttl, escalate_after, escalation_role = _approval_settings(decision)
    record, created = approvals.find_or_create(
        NewApprovalRequest(
            subject_kind=subject.kind,
            subject_id=subject_id,
            action_type=subject.action_type or subject.kind,
            summary=summary,
            payload=dict(payload),
            requester_kind="agent" if requested_by_agent else "user",
            requested_by=requester,
            agent_id=subject.agent_id,
            evaluation_id=evaluation.id,
            required_approvals=decision.required_approvals or 1,
            expires_at=now + ttl,
            escalate_at=now + escalate_after if escalate_after else None,
            escalation_role=escalation_role,
        )
    )
    if created:
        approvals.notify_requested(record)
        uow.record(
            "approval.created",
            aggregate_type="approval",
            aggregate_id=str(record.id),
            payload={
                "approval_id": record.id,
                "subject_kind": subject.kind,
                "subject_id": subject_id,
                "action_type": record.action_type,
                "evaluation_id": evaluation.id,
                "required_approvals": record.required_approvals,
                "requester_kind": record.requester_kind,
                "requested_by": record.requested_by,
                "agent_id": record.agent_id,
                "expires_at": record.expires_at,
            },
        )
    return _decision("pending", evaluation, decision, record, created=created)


def _unexpired(record: ApprovalRecord, now: datetime) -> bool:
    return record.expires_at is None or record.expires_at > now


def _approval_settings(decision: Decision) -> tuple[timedelta, timedelta | None, str | None]:
    """The deciding rule version's expiry, escalation delay and role (the default: 24 h)."""
    rule = decision.rule
    if rule is None:
        return DEFAULT_APPROVAL_TTL, None, None
    ttl = timedelta(seconds=rule.approval_ttl_s) if rule.approval_ttl_s else DEFAULT_APPROVAL_TTL
    escalate = timedelta(seconds=rule.escalate_after_s) if rule.escalate_after_s else None
    if escalate is not None and escalate >= ttl:
        escalate = None
    return ttl, escalate, rule.escalation_role


class GatedUnitOfWork(UnitOfWork):
    """A unit of work whose service performs a sensitive action: its port offers the gate as
    two methods (``Gate``), so the service stays testable with a fake."""

    def pass_gate(
        self, subject: Subject, *, summary: str, payload: Mapping[str, Any] | None = None
    ) -> GateDecision:
        return enforce(self, subject, summary=summary, payload=payload)

    def recheck_gate(self, decision: GateDecision) -> None:
        recheck(self, decision)


class Gate(Protocol):
    """The gate as a service's unit of work offers it (``GatedUnitOfWork``)."""

    def pass_gate(
        self, subject: Subject, *, summary: str, payload: Mapping[str, Any] | None = None
    ) -> GateDecision: ...

    def recheck_gate(self, decision: GateDecision) -> None: ...
