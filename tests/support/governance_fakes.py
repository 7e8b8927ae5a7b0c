"""In-memory fakes of the policies and approvals ports, honouring the same rules as the
database (approval decisions go through ``lambdas.approvals.transitions``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from lambdas.approvals import transitions
from lambdas.approvals.errors import ApprovalNotFound
from lambdas.approvals.models import (
    ApprovalRecord,
    DecisionOutcome,
    DecisionRecord,
    NewApprovalRequest,
    SweptRequest,
)
from lambdas.approvals.transitions import ApprovalState
from lambdas.policies.evaluator import Decision, Default, Rule
from lambdas.policies.matcher import Subject, parse_matcher
from lambdas.policies.models import EvaluationRecord, PolicyDefault, RuleDraft, RuleVersion
from lambdas.policies.repository import RuleChangedConcurrently, RuleNotFound
from lambdas.shared.events import validated_payload

T = TypeVar("T")


@dataclass
class FakeUnitOfWork(Generic[T]):
    """Exposes one store under ``name``; records commits and how many times it was entered."""

    store: T
    commits: int = 0
    entered: int = 0
    # (event type, aggregate id) of each change recorded (audit row + outbox event)
    recorded: list[tuple[str, str]] = field(default_factory=list)

    @property
    def committed(self) -> bool:
        return self.commits > 0

    def commit(self) -> None:
        self.commits += 1

    def record(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> None:
        # checked against the catalog as the real unit of work does
        validated_payload(event_type, version, aggregate_type, payload)
        self.recorded.append((event_type, aggregate_id))

    def __getattr__(self, name: str) -> T:
        if name in {"policies", "approvals", "sweeper"}:
            return self.store
        raise AttributeError(name)

    def factory(self) -> Callable[[], AbstractContextManager[Any]]:
        @contextmanager
        def open_uow() -> Iterator[FakeUnitOfWork[T]]:
            self.entered += 1
            yield self

        return open_uow


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class FakeRuleStore:
    versions_by_rule: dict[uuid.UUID, list[RuleVersion]] = field(default_factory=dict)
    default_setting: Default = field(default_factory=Default)
    settings_id: uuid.UUID = field(default_factory=uuid.uuid4)
    evaluations: list[tuple[Subject, Decision, EvaluationRecord]] = field(default_factory=list)

    def list_rules(self, *, include_inactive: bool = True) -> list[RuleVersion]:
        current = [v[-1] for v in self.versions_by_rule.values()]
        return sorted(
            (r for r in current if include_inactive or r.active), key=lambda r: -r.priority
        )

    def get(self, rule_id: uuid.UUID, version: int | None = None) -> RuleVersion | None:
        versions = self.versions_by_rule.get(rule_id, [])
        if version is None:
            return versions[-1] if versions else None
        return next((v for v in versions if v.version == version), None)

    def versions(self, rule_id: uuid.UUID) -> list[RuleVersion]:
        return list(reversed(self.versions_by_rule.get(rule_id, [])))

    def _store(
        self, draft: RuleDraft, rule_id: uuid.UUID, version: int, actor_id: uuid.UUID | None
    ) -> RuleVersion:
        matcher = parse_matcher(draft.matcher)
        for old in self.versions_by_rule.get(rule_id, []):
            self.versions_by_rule[rule_id][self.versions_by_rule[rule_id].index(old)] = (
                old.model_copy(update={"is_current": False})
            )
        stored = RuleVersion(
            **draft.model_dump() | {"matcher": matcher.document()},
            rule_id=rule_id,
            version=version,
            is_current=True,
            created_by=actor_id,
            created_at=_now(),
        )
        self.versions_by_rule.setdefault(rule_id, []).append(stored)
        return stored

    def create(self, draft: RuleDraft, *, actor_id: uuid.UUID | None) -> RuleVersion:
        return self._store(draft, uuid.uuid4(), 1, actor_id)

    def new_version(
        self,
        rule_id: uuid.UUID,
        draft: RuleDraft,
        *,
        actor_id: uuid.UUID | None,
        expected_version: int | None = None,
    ) -> RuleVersion:
        current = self.get(rule_id)
        if current is None:
            raise RuleNotFound("policy rule not found")
        if expected_version is not None and expected_version != current.version:
            raise RuleChangedConcurrently("stale")
        return self._store(draft, rule_id, current.version + 1, actor_id)

    def deactivate(self, rule_id: uuid.UUID, *, actor_id: uuid.UUID | None) -> RuleVersion:
        current = self.get(rule_id)
        if current is None:
            raise RuleNotFound("policy rule not found")
        draft = RuleDraft.model_validate(
            current.model_dump(include=set(RuleDraft.model_fields)) | {"active": False}
        )
        return self.new_version(rule_id, draft, actor_id=actor_id)

    def active_rules(self) -> list[Rule]:
        return [
            Rule(
                r.rule_id,
                r.version,
                r.name,
                r.priority,
                r.effect,
                parse_matcher(r.matcher),
                r.required_approvals,
            )
            for r in self.list_rules(include_inactive=False)
        ]

    def default(self) -> Default:
        return self.default_setting

    def set_default(self, setting: PolicyDefault, *, actor_id: uuid.UUID | None) -> uuid.UUID:
        self.default_setting = Default(setting.effect, setting.required_approvals)
        return self.settings_id

    def record_evaluation(
        self,
        subject: Subject,
        decision: Decision,
        *,
        inputs_hash: str,
        requested_by: uuid.UUID | None,
        agent_id: uuid.UUID | None = None,
        dry_run: bool = False,
    ) -> EvaluationRecord:
        record = EvaluationRecord(
            id=uuid.uuid4(),
            subject_kind=subject.kind,
            subject_id=subject.id,
            rule_id=decision.rule_id,
            rule_version=decision.rule_version,
            verdict=decision.effect,
            reason=decision.reason,
            inputs_hash=inputs_hash,
            dry_run=dry_run,
            requested_by=requested_by,
            agent_id=agent_id,
            evaluated_at=_now(),
        )
        self.evaluations.append((subject, decision, record))
        return record


@dataclass
class FakeApprovalStore:
    """Requests kept as pure ``ApprovalState``s; ``deciders`` hold approvals:decide."""

    deciders: set[uuid.UUID] = field(default_factory=set)
    requests: dict[uuid.UUID, tuple[NewApprovalRequest, ApprovalState, datetime]] = field(
        default_factory=dict
    )
    decision_ids: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID] = field(default_factory=dict)
    notified: list[tuple[str, uuid.UUID, str]] = field(default_factory=list)  # kind, id, status

    def _record(self, request_id: uuid.UUID) -> ApprovalRecord:
        asked, state, created_at = self.requests[request_id]
        return ApprovalRecord(
            id=request_id,
            **asked.model_dump(
                include={
                    "subject_kind", "subject_id", "action_type", "summary", "payload",
                    "requester_kind", "requested_by", "agent_id", "evaluation_id",
                    "required_approvals", "expires_at", "escalate_at", "escalation_role",
                }
            ),
            status=state.status,
            approvals=state.approvals,
            escalated_at=state.escalated_at,
            decided_at=state.decided_at,
            canceled_by=state.canceled_by,
            created_at=created_at,
            decisions=[
                DecisionRecord(
                    id=self.decision_ids[(request_id, v.decider)],
                    decided_by=v.decider,
                    decision=v.decision,
                    reason=v.reason,
                    decided_at=v.at,
                )
                for v in state.votes
            ],
        )  # fmt: skip

    def find_or_create(self, request: NewApprovalRequest) -> tuple[ApprovalRecord, bool]:
        for request_id, (asked, state, _) in self.requests.items():
            if (asked.subject_kind, asked.subject_id, state.status) == (
                request.subject_kind,
                request.subject_id,
                "pending",
            ):
                return self._record(request_id), False
        request_id = uuid.uuid4()
        state = ApprovalState(
            status="pending",
            required_approvals=request.required_approvals,
            requested_by=request.requested_by,
            expires_at=request.expires_at,
            escalate_at=request.escalate_at,
        )
        self.requests[request_id] = (request, state, _now())
        return self._record(request_id), True

    def get(self, request_id: uuid.UUID) -> ApprovalRecord | None:
        return self._record(request_id) if request_id in self.requests else None

    def list_requests(
        self,
        *,
        status: transitions.Status | None = None,
        waiting_for: uuid.UUID | None = None,
        requested_by: uuid.UUID | None = None,
        before: tuple[datetime, uuid.UUID] | None = None,
        limit: int = 50,
    ) -> list[ApprovalRecord]:
        records = sorted(
            (self._record(i) for i in self.requests),
            key=lambda r: (r.created_at, str(r.id)),
            reverse=True,
        )
        now = _now()
        out = [
            r
            for r in records
            if (status is None or r.status == status)
            and (requested_by is None or r.requested_by == requested_by)
            and (
                waiting_for is None
                or (
                    r.status == "pending"
                    and r.expires_at is not None
                    and r.expires_at > now
                    and r.requested_by != waiting_for
                    and waiting_for in self.deciders
                    and all(d.decided_by != waiting_for for d in r.decisions)
                )
            )
            and (before is None or (r.created_at, str(r.id)) < (before[0], str(before[1])))
        ]
        return out[:limit]

    def decide(
        self,
        request_id: uuid.UUID,
        *,
        decider: uuid.UUID,
        decision: transitions.Verdict,
        reason: str,
    ) -> DecisionOutcome:
        if request_id not in self.requests:
            raise ApprovalNotFound("approval request not found")
        asked, state, created_at = self.requests[request_id]
        after = transitions.decide(
            state,
            decider=decider,
            can_decide=decider in self.deciders,
            decision=decision,
            reason=reason,
            now=_now(),
        )
        self.requests[request_id] = (asked, after, created_at)
        decision_id = uuid.uuid4()
        self.decision_ids[(request_id, decider)] = decision_id
        if after.status != "pending":  # the port notifies the requester of a request it ends
            self.notified.append(("approval.decided", request_id, after.status))
        return DecisionOutcome(
            decision_id=decision_id,
            request_id=request_id,
            status=after.status,
            approvals=after.approvals,
            required_approvals=after.required_approvals,
            created_at=created_at,
            decided_at=after.decided_at,
        )

    def cancel(self, request_id: uuid.UUID, *, actor: uuid.UUID) -> ApprovalRecord:
        if request_id not in self.requests:
            raise ApprovalNotFound("approval request not found")
        asked, state, created_at = self.requests[request_id]
        self.requests[request_id] = (
            asked,
            transitions.cancel(state, actor=actor, now=_now()),
            created_at,
        )
        return self._record(request_id)

    def notify_requested(self, request: ApprovalRecord) -> int:
        self.notified.append(("approval.requested", request.id, request.status))
        return 1


@dataclass
class FakeApprovalsUnitOfWork(FakeUnitOfWork[FakeApprovalStore]):
    """The approvals unit: a decision is its last statement and commits with it; a refused
    decision is audited apart, (request id, decider, code) in ``refusals``."""

    refusals: list[tuple[uuid.UUID, uuid.UUID, str]] = field(default_factory=list)

    def record_refusal(self, request_id: uuid.UUID, *, decider: uuid.UUID, code: str) -> None:
        self.refusals.append((request_id, decider, code))

    def decide_and_commit(
        self,
        request_id: uuid.UUID,
        *,
        decider: uuid.UUID,
        decision: transitions.Verdict,
        reason: str,
    ) -> DecisionOutcome:
        outcome = self.store.decide(request_id, decider=decider, decision=decision, reason=reason)
        self.commit()
        return outcome


@dataclass
class FakeSweepStore:
    approvals: dict[uuid.UUID, FakeApprovalStore]  # by tenant
    now: Callable[[], datetime] = _now
    notified: list[SweptRequest] = field(default_factory=list)
    recorded: list[SweptRequest] = field(default_factory=list)

    def record(self, changes: list[SweptRequest]) -> int:
        self.recorded.extend(changes)
        return len(changes)

    def notify(self, changes: list[SweptRequest]) -> int:
        self.notified.extend(changes)
        return len(changes)

    def sweep(self, *, limit: int = 500) -> list[SweptRequest]:
        changed: list[SweptRequest] = []
        for tenant_id, store in self.approvals.items():
            for request_id, (asked, state, created_at) in list(store.requests.items()):
                action = transitions.due(state, now=self.now())
                if action is None:
                    continue
                after = (
                    transitions.expire(state, now=self.now())
                    if action == "expire"
                    else transitions.escalate(state, now=self.now())
                )
                store.requests[request_id] = (asked, after, created_at)
                changed.append(
                    SweptRequest(
                        tenant_id=tenant_id,
                        request_id=request_id,
                        change="expired" if action == "expire" else "escalated",
                        escalation_role=asked.escalation_role,
                        requested_by=asked.requested_by,
                    )
                )
        return changed[:limit]


__all__ = ["FakeApprovalStore", "FakeRuleStore", "FakeSweepStore", "FakeUnitOfWork"]
