"""SQL of policy rules, the tenant's default effect and persisted evaluations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from lambdas.policies.compiled import COMPILER, RuleCompiler, TenantPolicy, memo_key
from lambdas.policies.evaluator import Decision, Default, Rule
from lambdas.policies.matcher import parse_matcher
from lambdas.policies.models import EvaluationRecord, PolicyDefault, RuleDraft, RuleVersion
from lambdas.policies.subject import Subject
from lambdas.shared.db import Connection, UnitOfWork
from lambdas.shared.errors import Conflict, NotFound, ValidationFailed


class RuleNotFound(NotFound):
    code = "policy_rule_not_found"


class RuleChangedConcurrently(Conflict):
    code = "policy_rule_changed"


class InvalidRule(ValidationFailed):
    code = "invalid_policy_rule"


# Constraint names of migration 026 -> the domain error a client sees (never the name).
_REFUSALS: dict[str, tuple[type[Exception], str]] = {
    "policy_rules_version_key": (RuleChangedConcurrently, "the rule was changed meanwhile"),
    "policy_rules_current_key": (RuleChangedConcurrently, "the rule was changed meanwhile"),
    "policy_rules_versions_immutable": (
        RuleChangedConcurrently,
        "a rule version cannot be changed; create a new version",
    ),
    "policy_rules_approval_settings": (
        InvalidRule,
        "approval settings only apply to require_approval rules, which need a quorum",
    ),
    "policy_rules_escalation_role_fkey": (InvalidRule, "the escalation role does not exist"),
    "policy_evaluations_rule_fkey": (InvalidRule, "the deciding rule version does not exist"),
}


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn a refusal by one of this feature's constraints into its domain error."""
    try:
        yield
    except psycopg.errors.IntegrityError as error:
        refusal = _REFUSALS.get(error.diag.constraint_name or "")
        if refusal is None:
            raise
        kind, message = refusal
        raise kind(message) from error


_RULE_COLUMNS = """
    rule_id, version, is_current, name, description, priority, active, effect, matcher,
    required_approvals, approval_ttl_s, escalate_after_s, escalation_role, created_by,
    created_at
"""

_INSERT_VERSION = f"""
INSERT INTO alquimista_platform.policy_rules
    (tenant_id, rule_id, version, name, description, priority, active, effect, matcher,
     required_approvals, approval_ttl_s, escalate_after_s, escalation_role, created_by)
VALUES (%(tenant)s, coalesce(%(rule_id)s, gen_random_uuid()), %(version)s, %(name)s,
        %(description)s, %(priority)s, %(active)s, %(effect)s, %(matcher)s,
        %(required_approvals)s, %(approval_ttl_s)s, %(escalate_after_s)s, %(escalation_role)s,
        %(actor)s)
RETURNING {_RULE_COLUMNS}
"""


# The tenant's default and its active rule versions in one round trip: one row per rule, or one
# row with no rule when there is none (the default columns are NULL when it was never set). The
# matcher comes as text: it is parsed only when this version was not compiled before.
_POLICY_SQL = """
SELECT s.default_effect, s.default_required_approvals,
       r.rule_id, r.version, r.name, r.priority, r.effect, r.matcher::text AS matcher,
       r.required_approvals, r.approval_ttl_s, r.escalate_after_s, r.escalation_role
FROM (VALUES (%(tenant)s::uuid)) AS t (tenant_id)
LEFT JOIN alquimista_platform.policy_settings AS s ON s.tenant_id = t.tenant_id
LEFT JOIN alquimista_platform.policy_rules AS r
       ON r.tenant_id = t.tenant_id AND r.is_current AND r.active
"""


def _version(row: dict[str, Any]) -> RuleVersion:
    return RuleVersion.model_validate(row)


class PolicyRepository:
    """The tenant's rules (every version kept), default effect and evaluations."""

    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def list_rules(self, *, include_inactive: bool = True) -> list[RuleVersion]:
        """The current version of each rule, highest priority first."""
        rows = self._conn.execute(
            f"""
            SELECT {_RULE_COLUMNS} FROM alquimista_platform.policy_rules
            WHERE tenant_id = %s AND is_current AND (%s OR active)
            ORDER BY priority DESC, name, rule_id
            """,
            (self._tenant_id, include_inactive),
        ).fetchall()
        return [_version(row) for row in rows]

    def get(self, rule_id: UUID, version: int | None = None) -> RuleVersion | None:
        """A rule's current version, or the given one."""
        row = self._conn.execute(
            f"""
            SELECT {_RULE_COLUMNS} FROM alquimista_platform.policy_rules
            WHERE tenant_id = %(tenant)s AND rule_id = %(rule)s
              AND (CASE WHEN %(version)s::integer IS NULL THEN is_current
                        ELSE version = %(version)s END)
            """,
            {"tenant": self._tenant_id, "rule": rule_id, "version": version},
        ).fetchone()
        return _version(row) if row else None

    def versions(self, rule_id: UUID) -> list[RuleVersion]:
        rows = self._conn.execute(
            f"""
            SELECT {_RULE_COLUMNS} FROM alquimista_platform.policy_rules
            WHERE tenant_id = %s AND rule_id = %s ORDER BY version DESC
            """,
            (self._tenant_id, rule_id),
        ).fetchall()
        return [_version(row) for row in rows]

    def create(self, draft: RuleDraft, *, actor_id: UUID | None) -> RuleVersion:
        """Version 1 of a new rule. The matcher is validated first (``InvalidMatcher``)."""
        matcher = parse_matcher(draft.matcher)
        return self._insert(draft, matcher.document(), rule_id=None, version=1, actor_id=actor_id)

    def new_version(
        self,
        rule_id: UUID,
        draft: RuleDraft,
        *,
        actor_id: UUID | None,
        expected_version: int | None = None,
    ) -> RuleVersion:
        """Store ``draft`` as the next version of ``rule_id``; the previous one stays.

        With ``expected_version``, refuses (``RuleChangedConcurrently``) if another edit came
        first. Concurrent edits are serialised on the current version's row.
        """
        matcher = parse_matcher(draft.matcher)
        current = self._conn.execute(
            """
            UPDATE alquimista_platform.policy_rules SET is_current = false
            WHERE tenant_id = %s AND rule_id = %s AND is_current
            RETURNING version
            """,
            (self._tenant_id, rule_id),
        ).fetchone()
        if current is None:
            if self.get(rule_id) is not None:  # another edit committed while we waited
                raise RuleChangedConcurrently("the rule was changed meanwhile; retry")
            raise RuleNotFound("policy rule not found")
        if expected_version is not None and current["version"] != expected_version:
            raise RuleChangedConcurrently(
                f"the rule is at version {current['version']}, not {expected_version}"
            )
        return self._insert(
            draft,
            matcher.document(),
            rule_id=rule_id,
            version=current["version"] + 1,
            actor_id=actor_id,
        )

    def deactivate(self, rule_id: UUID, *, actor_id: UUID | None) -> RuleVersion:
        """A new version identical to the current one but inactive (idempotent)."""
        current = self.get(rule_id)
        if current is None:
            raise RuleNotFound("policy rule not found")
        if not current.active:
            return current
        draft = RuleDraft.model_validate(
            current.model_dump(include=set(RuleDraft.model_fields)) | {"active": False}
        )
        return self.new_version(rule_id, draft, actor_id=actor_id, expected_version=current.version)

    def _insert(
        self,
        draft: RuleDraft,
        matcher: dict[str, Any],
        *,
        rule_id: UUID | None,
        version: int,
        actor_id: UUID | None,
    ) -> RuleVersion:
        params = draft.model_dump() | {
            "tenant": self._tenant_id,
            "rule_id": rule_id,
            "version": version,
            "matcher": Jsonb(matcher),
            "actor": actor_id,
        }
        with translate_errors():
            row = self._conn.execute(_INSERT_VERSION, params).fetchone()
        if row is None:
            raise LookupError("the insert returned no row")
        return _version(row)

    def active_rules(self) -> list[Rule]:
        """The current, active version of every rule, ready for the evaluator."""
        rows = self._conn.execute(
            """
            SELECT rule_id, version, name, priority, effect, matcher, required_approvals
            FROM alquimista_platform.policy_rules
            WHERE tenant_id = %s AND is_current AND active
            """,
            (self._tenant_id,),
        ).fetchall()
        return [
            Rule(
                rule_id=row["rule_id"],
                version=row["version"],
                name=row["name"],
                priority=row["priority"],
                effect=row["effect"],
                matcher=parse_matcher(row["matcher"], trusted=True),
                required_approvals=row["required_approvals"],
            )
            for row in rows
        ]

    def load_policy(self, compiler: RuleCompiler = COMPILER) -> TenantPolicy:
        """The tenant's active rules, compiled (reused from ``compiler`` where the versions are
        the same), and its default effect: one query."""
        rows = self._conn.execute(_POLICY_SQL, {"tenant": self._tenant_id}).fetchall()
        first = rows[0] if rows else {}
        default = (
            Default(first["default_effect"], first["default_required_approvals"])
            if first.get("default_effect") is not None
            else Default()
        )
        rules = compiler.rule_set(self._tenant_id, (row for row in rows if row["rule_id"]))
        return TenantPolicy(self._tenant_id, rules, default)

    def default(self) -> Default:
        """The tenant's effect when no rule matches (allow when never set)."""
        row = self._conn.execute(
            """
            SELECT default_effect, default_required_approvals
            FROM alquimista_platform.policy_settings WHERE tenant_id = %s
            """,
            (self._tenant_id,),
        ).fetchone()
        if row is None:
            return Default()
        return Default(row["default_effect"], row["default_required_approvals"])

    def set_default(self, setting: PolicyDefault, *, actor_id: UUID | None) -> UUID:
        """Store the tenant's default; the id of its settings row (created on first use)."""
        row = self._conn.execute(
            """
            INSERT INTO alquimista_platform.policy_settings
                (tenant_id, default_effect, default_required_approvals, updated_by)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (tenant_id) DO UPDATE SET
                default_effect = excluded.default_effect,
                default_required_approvals = excluded.default_required_approvals,
                updated_by = excluded.updated_by
            RETURNING id
            """,
            (self._tenant_id, setting.effect, setting.required_approvals, actor_id),
        ).fetchone()
        if row is None:
            raise LookupError("the upsert returned no row")
        settings_id: UUID = row["id"]
        return settings_id

    def record_evaluation(
        self,
        subject: Subject,
        decision: Decision,
        *,
        inputs_hash: str,
        requested_by: UUID | None,
        agent_id: UUID | None = None,
        dry_run: bool = False,
    ) -> EvaluationRecord:
        """Persist an evaluation: the deciding rule version, verdict, reason and the inputs'
        hash. The subject's text is not stored."""
        with translate_errors():
            row = self._conn.execute(
                """
                INSERT INTO alquimista_platform.policy_evaluations
                    (tenant_id, subject_kind, subject_id, rule_id, rule_version, verdict,
                     reason, inputs_hash, dry_run, requested_by, agent_id)
                VALUES (%(tenant)s, %(kind)s, %(subject_id)s, %(rule_id)s, %(version)s,
                        %(verdict)s, %(reason)s, %(hash)s, %(dry_run)s, %(requested_by)s,
                        %(agent_id)s)
                RETURNING id, subject_kind, subject_id, rule_id, rule_version, verdict, reason,
                          inputs_hash, dry_run, requested_by, agent_id, evaluated_at
                """,
                {
                    "tenant": self._tenant_id,
                    "kind": subject.kind,
                    "subject_id": subject.id,
                    "rule_id": decision.rule_id,
                    "version": decision.rule_version,
                    "verdict": decision.effect,
                    "reason": decision.reason[:2000],
                    "hash": inputs_hash,
                    "dry_run": dry_run,
                    "requested_by": requested_by,
                    "agent_id": agent_id,
                },
            ).fetchone()
        if row is None:
            raise LookupError("the insert returned no row")
        return EvaluationRecord.model_validate(row)

    def get_evaluation(self, evaluation_id: UUID) -> EvaluationRecord | None:
        row = self._conn.execute(
            """
            SELECT id, subject_kind, subject_id, rule_id, rule_version, verdict, reason,
                   inputs_hash, dry_run, requested_by, agent_id, evaluated_at
            FROM alquimista_platform.policy_evaluations
            WHERE tenant_id = %s AND id = %s
            """,
            (self._tenant_id, evaluation_id),
        ).fetchone()
        return EvaluationRecord.model_validate(row) if row else None


class PoliciesUnitOfWork(UnitOfWork):
    policies: PolicyRepository

    def _on_enter(self) -> None:
        if self.tenant_id is None:
            raise RuntimeError("the policies unit of work needs a tenant")
        self.policies = PolicyRepository(self.conn, self.tenant_id)

    def commit(self) -> None:
        """Commit; the policy this request's gate loaded for the tenant is read again next."""
        super().commit()
        if self.tenant_id is not None:
            self.scope.memo.pop(memo_key(self.tenant_id), None)
