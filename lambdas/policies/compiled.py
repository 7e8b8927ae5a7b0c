"""The tenant's policy ready to evaluate (``TenantPolicy``): its active rules compiled into a
``RuleSet``, and its default effect. ``PolicyRepository.load_policy`` reads both in one query on
every invocation; what is compiled from the rows is reused across invocations (``RuleCompiler``).

Why reusing it is safe: a rule version never changes once stored (migration 026's guard lets only
``is_current`` change), so the rule parsed from (tenant, rule id, version) and the rule set built
from an exact collection of such versions stay right for the life of the execution environment.
Freshness comes from the query: a new, edited or deactivated rule changes the versions it
returns, hence the key, and the set is built again (reusing the unchanged rules). The tenant is
part of every key, so nothing compiled for one tenant is handed to another.

Within one request the loaded policy is kept in the request scope's memo under ``memo_key``
(``lambdas.shared.gate``): a request that authorizes several subjects reads the rules once, and
the next request reads them again.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from uuid import UUID

from lambdas.policies.evaluator import Decision, Default, Rule, RuleSet
from lambdas.policies.matcher import parse_matcher
from lambdas.policies.subject import Subject

K = TypeVar("K")
V = TypeVar("V")

MEMO_OWNER: Final = "policies.tenant_policy"
MAX_RULES: Final = 4096  # parsed rule versions kept per execution environment
MAX_RULE_SETS: Final = 64  # built rule sets (one per tenant and collection of versions)


def memo_key(tenant_id: UUID) -> tuple[str, UUID]:
    """Where a request scope keeps the tenant's loaded policy for the rest of the request."""
    return (MEMO_OWNER, tenant_id)


@dataclass(frozen=True)
class TenantPolicy:
    """The tenant's active rules, compiled, and its default: everything an evaluation reads."""

    tenant_id: UUID
    rules: RuleSet
    default: Default

    def evaluate(self, subject: Subject) -> Decision:
        return self.rules.evaluate(subject, self.default)


class RuleCompiler:
    """Parsed rule versions and built rule sets of this execution environment, each bounded
    (least recently used first out). Keyed by immutable versions: see the module docstring."""

    def __init__(self, *, max_rules: int = MAX_RULES, max_rule_sets: int = MAX_RULE_SETS) -> None:
        self._rules: OrderedDict[tuple[UUID, UUID, int], Rule] = OrderedDict()
        self._sets: OrderedDict[tuple[UUID, frozenset[tuple[UUID, int]]], RuleSet] = OrderedDict()
        self._max_rules = max_rules
        self._max_sets = max_rule_sets
        self.parsed = 0  # rule versions parsed (cache misses), for tests and benchmarks
        self.built = 0  # rule sets built
        # A Lambda environment runs one invocation at a time; the local gateway serves requests
        # on threads, and an LRU's read moves its entry.
        self._lock = threading.Lock()

    def rule_set(self, tenant_id: UUID, rows: Iterable[Mapping[str, Any]]) -> RuleSet:
        """The rule set of ``rows`` (the tenant's active rule versions, as stored)."""
        with self._lock:
            return self._rule_set(tenant_id, rows)

    def _rule_set(self, tenant_id: UUID, rows: Iterable[Mapping[str, Any]]) -> RuleSet:
        rules = [self._rule(tenant_id, row) for row in rows]
        key = (tenant_id, frozenset((rule.rule_id, rule.version) for rule in rules))
        rule_set = _lookup(self._sets, key)
        if rule_set is None:
            rule_set = RuleSet(rules)
            self.built += 1
            _store(self._sets, key, rule_set, self._max_sets)
        return rule_set

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._sets.clear()

    def _rule(self, tenant_id: UUID, row: Mapping[str, Any]) -> Rule:
        key = (tenant_id, row["rule_id"], row["version"])
        rule = _lookup(self._rules, key)
        if rule is not None:
            return rule
        matcher = row["matcher"]
        rule = Rule(
            rule_id=row["rule_id"],
            version=row["version"],
            name=row["name"],
            priority=row["priority"],
            effect=row["effect"],
            matcher=parse_matcher(
                json.loads(matcher) if isinstance(matcher, str) else matcher, trusted=True
            ),
            required_approvals=row["required_approvals"],
            approval_ttl_s=row["approval_ttl_s"],
            escalate_after_s=row["escalate_after_s"],
            escalation_role=row["escalation_role"],
        )
        self.parsed += 1
        _store(self._rules, key, rule, self._max_rules)
        return rule


def _lookup(cache: OrderedDict[K, V], key: K) -> V | None:
    value = cache.get(key)
    if value is not None:
        cache.move_to_end(key)
    return value


def _store(cache: OrderedDict[K, V], key: K, value: V, limit: int) -> None:
    cache[key] = value
    while len(cache) > limit:
        cache.popitem(last=False)


# One per execution environment: what it holds is derived from immutable rows (module docstring).
COMPILER: Final = RuleCompiler()
