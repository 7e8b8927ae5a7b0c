from __future__ import annotations

import uuid

from lambdas.policies.evaluator import Default, Rule, RuleSet, evaluate, inputs_hash
from lambdas.policies.matcher import Subject, parse_matcher

CPF_MESSAGE = Subject(kind="chat.message", id="m1", text="o cpf é 529.982.247-25")


def _rule(
    effect: str, priority: int, matcher: dict[str, object] | None = None, name: str = ""
) -> Rule:
    return Rule(
        rule_id=uuid.uuid4(),
        version=1,
        name=name or f"{effect}@{priority}",
        priority=priority,
        effect=effect,  # type: ignore[arg-type]
        matcher=parse_matcher(matcher or {}),
        required_approvals=2 if effect == "require_approval" else None,
    )


def test_no_rules_gives_the_tenants_default() -> None:
    decision = evaluate([], CPF_MESSAGE, Default("require_approval", 3))
    assert decision.effect == "require_approval"
    assert decision.rule is None
    assert decision.rule_version is None
    assert decision.required_approvals == 3
    assert "default" in decision.reason


def test_the_highest_priority_matching_rule_decides() -> None:
    low = _rule("require_approval", 1)
    high = _rule("allow", 5)
    decision = evaluate([low, high], CPF_MESSAGE, Default())
    assert decision.rule == high
    assert decision.effect == "allow"
    assert decision.matched == (high, low)


def test_a_non_matching_rule_does_not_decide() -> None:
    high = _rule("allow", 100, {"subject_kinds": ["agent.action"]})
    low = _rule("require_approval", 1, {"detectors": ["cpf"]}, name="CPF needs 2")
    decision = evaluate([high, low], CPF_MESSAGE, Default())
    assert decision.rule == low
    assert decision.required_approvals == 2
    assert decision.reason == "rule 'CPF needs 2' v1 (priority 1): text contains a valid cpf"


def test_deny_wins_over_a_higher_priority_allow() -> None:
    allow = _rule("allow", 1000)
    block = _rule("block", -5, {"detectors": ["cpf"]})
    decision = evaluate([allow, block], CPF_MESSAGE, Default())
    assert decision.effect == "block"
    assert decision.rule == block


def test_among_blocks_the_highest_priority_is_named() -> None:
    first = _rule("block", 1)
    second = _rule("block", 2)
    assert evaluate([first, second], CPF_MESSAGE, Default()).rule == second


def test_at_equal_priority_the_stricter_effect_wins() -> None:
    allow = _rule("allow", 7)
    approval = _rule("require_approval", 7)
    assert evaluate([allow, approval], CPF_MESSAGE, Default()).rule == approval
    assert evaluate([approval, allow], CPF_MESSAGE, Default()).rule == approval


def test_a_rule_set_is_reusable_and_compiles_every_pattern_once() -> None:
    rules = [
        _rule("block", 1, {"patterns": [r"(?i)segredo"]}),
        _rule("require_approval", 2, {"patterns": [r"(?i)segredo", r"\bsigiloso\b"]}),
    ]
    rule_set = RuleSet(rules)
    assert len(rule_set.patterns.index) == 2
    assert rule_set.evaluate(Subject(kind="chat.message", text="SEGREDO"), Default()).effect == (
        "block"
    )
    only_second = rule_set.evaluate(Subject(kind="chat.message", text="é sigiloso"), Default())
    assert only_second.effect == "require_approval"
    assert rule_set.evaluate(Subject(kind="chat.message", text="ok"), Default()).effect == "allow"


def test_the_inputs_hash_is_canonical_and_hides_the_text() -> None:
    a = Subject(kind="chat.message", text="cpf 529.982.247-25", requester_roles={"a", "b"})
    b = Subject(kind="chat.message", text="cpf 529.982.247-25", requester_roles={"b", "a"})
    digest = inputs_hash(a)
    assert digest == inputs_hash(b)
    assert len(digest) == 64
    assert "529" not in digest
    assert digest != inputs_hash(a.model_copy(update={"text": "cpf 529.982.247-26"}))
