"""Policy use cases: manage the tenant's rules and default, and evaluate subjects. Each change
is recorded (audit row + outbox event) in its own transaction."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol
from uuid import UUID

from pydantic import BaseModel

from lambdas.policies.evaluator import Decision, Default, Rule, RuleSet, inputs_hash
from lambdas.policies.models import EvaluationRecord, PolicyDefault, RuleDraft, RuleVersion
from lambdas.policies.repository import RuleNotFound
from lambdas.policies.subject import Subject
from lambdas.shared.scope import ChangeRecorder


class RuleStore(Protocol):
    def list_rules(self, *, include_inactive: bool = True) -> list[RuleVersion]: ...

    def get(self, rule_id: UUID, version: int | None = None) -> RuleVersion | None: ...

    def versions(self, rule_id: UUID) -> list[RuleVersion]: ...

    def create(self, draft: RuleDraft, *, actor_id: UUID | None) -> RuleVersion: ...

    def new_version(
        self,
        rule_id: UUID,
        draft: RuleDraft,
        *,
        actor_id: UUID | None,
        expected_version: int | None = None,
    ) -> RuleVersion: ...

    def deactivate(self, rule_id: UUID, *, actor_id: UUID | None) -> RuleVersion: ...

    def active_rules(self) -> list[Rule]: ...

    def default(self) -> Default: ...

    def set_default(self, setting: PolicyDefault, *, actor_id: UUID | None) -> UUID: ...

    def record_evaluation(
        self,
        subject: Subject,
        decision: Decision,
        *,
        inputs_hash: str,
        requested_by: UUID | None,
        agent_id: UUID | None = None,
        dry_run: bool = False,
    ) -> EvaluationRecord: ...


class PoliciesUow(ChangeRecorder, Protocol):
    @property
    def policies(self) -> RuleStore: ...

    def commit(self) -> None: ...


PoliciesUowFactory = Callable[[], AbstractContextManager[PoliciesUow]]


class RuleList(BaseModel):
    items: list[RuleVersion]


class RuleHistory(BaseModel):
    rule: RuleVersion
    versions: list[RuleVersion]


class MatchedRule(BaseModel):
    rule_id: UUID
    version: int
    name: str
    priority: int
    effect: str


class EvaluationResult(BaseModel):
    """A verdict and why: the deciding rule (none for the default), every rule that matched,
    and the persisted evaluation's id."""

    evaluation_id: UUID
    effect: str
    rule_id: UUID | None
    rule_version: int | None
    reason: str
    required_approvals: int | None
    matched: list[MatchedRule]


def list_rules(uow_factory: PoliciesUowFactory, *, include_inactive: bool = True) -> RuleList:
    """The current version of each of the tenant's rules, highest priority first."""
    with uow_factory() as uow:
        return RuleList(items=uow.policies.list_rules(include_inactive=include_inactive))


def get_rule(uow_factory: PoliciesUowFactory, rule_id: UUID) -> RuleHistory:
    """A rule's current version and all its versions, newest first."""
    with uow_factory() as uow:
        versions = uow.policies.versions(rule_id)
    current = next((v for v in versions if v.is_current), None)
    if current is None:
        raise RuleNotFound("policy rule not found")
    return RuleHistory(rule=current, versions=versions)


def _record(uow: PoliciesUow, event_type: str, rule: RuleVersion) -> None:
    uow.record(
        event_type,
        aggregate_type="policy_rule",
        aggregate_id=str(rule.rule_id),
        payload={
            "rule_id": rule.rule_id,
            "version": rule.version,
            "effect": rule.effect,
            "active": rule.active,
        },
    )


def create_rule(
    uow_factory: PoliciesUowFactory, draft: RuleDraft, *, actor_id: UUID
) -> RuleVersion:
    """Store version 1 of a new rule; an invalid matcher is refused (422) and not stored."""
    with uow_factory() as uow:
        rule = uow.policies.create(draft, actor_id=actor_id)
        _record(uow, "policy_rule.created", rule)
        uow.commit()
        return rule


def update_rule(
    uow_factory: PoliciesUowFactory,
    rule_id: UUID,
    draft: RuleDraft,
    *,
    actor_id: UUID,
    expected_version: int | None = None,
) -> RuleVersion:
    """Store ``draft`` as the rule's next version; earlier versions stay as they were."""
    with uow_factory() as uow:
        if uow.policies.get(rule_id) is None:
            raise RuleNotFound("policy rule not found")
        rule = uow.policies.new_version(
            rule_id, draft, actor_id=actor_id, expected_version=expected_version
        )
        _record(uow, "policy_rule.updated", rule)
        uow.commit()
        return rule


def deactivate_rule(
    uow_factory: PoliciesUowFactory, rule_id: UUID, *, actor_id: UUID
) -> RuleVersion:
    """Stop evaluating a rule (a new, inactive version). Idempotent."""
    with uow_factory() as uow:
        current = uow.policies.get(rule_id)
        if current is None:
            raise RuleNotFound("policy rule not found")
        if not current.active:
            return current
        rule = uow.policies.deactivate(rule_id, actor_id=actor_id)
        _record(uow, "policy_rule.deactivated", rule)
        uow.commit()
        return rule


def get_default(uow_factory: PoliciesUowFactory) -> PolicyDefault:
    """The tenant's effect when no rule matches (allow when never set)."""
    with uow_factory() as uow:
        default = uow.policies.default()
    return PolicyDefault(effect=default.effect, required_approvals=default.required_approvals)


def set_default(
    uow_factory: PoliciesUowFactory, setting: PolicyDefault, *, actor_id: UUID
) -> PolicyDefault:
    """Change the effect applied when no rule matches; recorded (audit row and
    ``policy_settings.changed``) in the same transaction."""
    with uow_factory() as uow:
        settings_id = uow.policies.set_default(setting, actor_id=actor_id)
        uow.record(
            "policy_settings.changed",
            aggregate_type="policy_settings",
            aggregate_id=str(settings_id),
            payload={
                "default_effect": setting.effect,
                "default_required_approvals": setting.required_approvals,
                "changed_by": actor_id,
            },
        )
        uow.commit()
    return setting


def evaluate_and_record(
    store: RuleStore,
    subject: Subject,
    *,
    requested_by: UUID | None,
    agent_id: UUID | None = None,
    dry_run: bool = False,
    rule_set: RuleSet | None = None,
) -> tuple[Decision, EvaluationRecord]:
    """Evaluate ``subject`` against the tenant's active rules and persist the evaluation, in
    the caller's transaction (the gate's first step). Pass ``rule_set`` to reuse rules already
    loaded in this invocation."""
    rules = rule_set if rule_set is not None else RuleSet(store.active_rules())
    decision = rules.evaluate(subject, store.default())
    record = store.record_evaluation(
        subject,
        decision,
        inputs_hash=inputs_hash(subject),
        requested_by=requested_by,
        agent_id=agent_id,
        dry_run=dry_run,
    )
    return decision, record


def dry_run(
    uow_factory: PoliciesUowFactory, subject: Subject, *, actor_id: UUID
) -> EvaluationResult:
    """What the tenant's rules would say about ``subject``, and why; recorded as a dry run.
    Nothing is blocked, and no approval request is opened."""
    with uow_factory() as uow:
        decision, record = evaluate_and_record(
            uow.policies, subject, requested_by=actor_id, agent_id=subject.agent_id, dry_run=True
        )
        uow.record(
            "policy_evaluation.simulated",
            aggregate_type="policy_evaluation",
            aggregate_id=str(record.id),
            payload={
                "evaluation_id": record.id,
                "subject_kind": record.subject_kind,
                "subject_id": record.subject_id,
                "rule_id": record.rule_id,
                "rule_version": record.rule_version,
                "verdict": record.verdict,
                "inputs_hash": record.inputs_hash,
            },
        )
        uow.commit()
    return EvaluationResult(
        evaluation_id=record.id,
        effect=decision.effect,
        rule_id=decision.rule_id,
        rule_version=decision.rule_version,
        reason=decision.reason,
        required_approvals=decision.required_approvals,
        matched=[
            MatchedRule(
                rule_id=r.rule_id,
                version=r.version,
                name=r.name,
                priority=r.priority,
                effect=r.effect,
            )
            for r in decision.matched
        ],
    )
