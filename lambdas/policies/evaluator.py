"""Policy evaluation: a pure function of the tenant's active rules and one subject.

How a verdict is reached (docs/policies.md):

1. A matching ``block`` rule always wins (deny wins over allow), whatever the priorities;
   the highest-priority one is named.
2. Otherwise the highest-priority matching rule decides between ``allow`` and
   ``require_approval``; at equal priority ``require_approval`` wins (the stricter effect).
3. No rule matches: the tenant's default effect.

Ties beyond that are broken by rule id, so the same rules always give the same answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from lambdas.policies.matcher import Matcher, PatternSet, PreparedSubject, Subject, match

Effect = Literal["allow", "block", "require_approval"]
EFFECTS: tuple[Effect, ...] = ("allow", "block", "require_approval")
_STRICTNESS: dict[Effect, int] = {"allow": 0, "require_approval": 1, "block": 2}


@dataclass(frozen=True)
class Rule:
    """One version of a rule, as evaluation needs it."""

    rule_id: UUID
    version: int
    name: str
    priority: int
    effect: Effect
    matcher: Matcher
    required_approvals: int | None = None
    # How the approval request a require_approval version opens behaves (None: the defaults).
    approval_ttl_s: int | None = None
    escalate_after_s: int | None = None
    escalation_role: str | None = None


@dataclass(frozen=True)
class Default:
    """The tenant's effect when no rule matches."""

    effect: Effect = "allow"
    required_approvals: int = 1


@dataclass(frozen=True)
class Decision:
    effect: Effect
    rule: Rule | None  # None: the default decided
    reason: str
    required_approvals: int | None
    matched: tuple[Rule, ...]  # every matching rule, in the order they were considered

    @property
    def rule_id(self) -> UUID | None:
        return self.rule.rule_id if self.rule else None

    @property
    def rule_version(self) -> int | None:
        return self.rule.version if self.rule else None


class RuleSet:
    """Rules ordered for evaluation, with their patterns compiled into one set. Build it once
    per invocation and evaluate many subjects against it."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        ordered = sorted(
            rules,
            key=lambda r: (
                r.effect != "block",
                -r.priority,
                -_STRICTNESS[r.effect],
                str(r.rule_id),
            ),
        )
        self.rules: tuple[Rule, ...] = tuple(ordered)
        self.patterns = PatternSet(p for r in ordered for p in (r.matcher.patterns or ()))

    def evaluate(self, subject: Subject, default: Default) -> Decision:
        prepared = PreparedSubject(subject, pattern_hits=self.patterns.hits(subject.text))
        matched: list[Rule] = []
        decided: tuple[Rule, list[str]] | None = None
        for rule in self.rules:
            held = match(rule.matcher, prepared, self.patterns)
            if held is None:
                continue
            matched.append(rule)
            if decided is None:
                decided = (rule, held)
        if decided is None:
            return Decision(
                effect=default.effect,
                rule=None,
                reason=f"no rule matched; the tenant's default is {default.effect}",
                required_approvals=(
                    default.required_approvals if default.effect == "require_approval" else None
                ),
                matched=(),
            )
        rule, held = decided
        why = "; ".join(held)
        return Decision(
            effect=rule.effect,
            rule=rule,
            reason=f"rule {rule.name!r} v{rule.version} (priority {rule.priority}): {why}",
            required_approvals=(rule.required_approvals or 1)
            if rule.effect == "require_approval"
            else None,
            matched=tuple(matched),
        )


def evaluate(rules: Sequence[Rule] | RuleSet, subject: Subject, default: Default) -> Decision:
    """The verdict of ``rules`` on ``subject``; see the module docstring for the order."""
    rule_set = rules if isinstance(rules, RuleSet) else RuleSet(rules)
    return rule_set.evaluate(subject, default)


def inputs_hash(subject: Subject) -> str:
    """SHA-256 of the canonical JSON of everything the evaluation read: what is persisted
    instead of the subject's text."""
    canonical = json.dumps(
        {
            "kind": subject.kind,
            "id": subject.id,
            "text": subject.text,
            "agent_id": str(subject.agent_id) if subject.agent_id else None,
            "agent_category": subject.agent_category,
            "action_type": subject.action_type,
            "estimated_tokens": subject.tokens,
            "requester_roles": sorted(subject.requester_roles),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
