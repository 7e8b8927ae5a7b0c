from __future__ import annotations

import uuid

import pytest

from lambdas.policies.matcher import (
    InvalidMatcher,
    Matcher,
    PatternSet,
    PreparedSubject,
    Subject,
    match,
    parse_matcher,
)


def _problems(raw: object) -> list[dict[str, object]]:
    with pytest.raises(InvalidMatcher) as caught:
        parse_matcher(raw)
    assert caught.value.status == 422
    assert caught.value.details
    return caught.value.details


def _matches(matcher: Matcher, subject: Subject) -> list[str] | None:
    patterns = PatternSet(matcher.patterns or ())
    prepared = PreparedSubject(subject, pattern_hits=patterns.hits(subject.text))
    return match(matcher, prepared, patterns)


def test_a_full_matcher_parses_and_normalizes() -> None:
    agent = uuid.uuid4()
    matcher = parse_matcher(
        {
            "subject_kinds": ["chat.message", "chat.message"],
            "agents": {"ids": [str(agent)], "categories": [" Sales "]},
            "action_types": ["Email.Send"],
            "keywords": ["  Segredo   Industrial ", "AÇÃO"],
            "patterns": [r"(?i)contrato\s+n[ºo]\s*\d+"],
            "detectors": ["cpf", "cnpj", "email", "phone"],
            "estimated_tokens_above": 4000,
            "requester_roles": ["member"],
        }
    )
    assert matcher.subject_kinds == ["chat.message"]
    assert matcher.agents is not None
    assert matcher.agents.categories == ["sales"]
    assert matcher.action_types == ["email.send"]
    assert matcher.keywords == ["segredo industrial", "acao"]
    assert matcher.document()["estimated_tokens_above"] == 4000
    assert "requester_roles" in matcher.document()


def test_an_empty_matcher_matches_every_subject() -> None:
    matcher = parse_matcher({})
    assert _matches(matcher, Subject(kind="agent.action")) == ["the matcher has no conditions"]


@pytest.mark.parametrize(
    ("raw", "loc", "fragment"),
    [
        ({"subject_kinds": ["chat.msg"]}, ["matcher", "subject_kinds", "0"], "unknown value"),
        ({"detectors": ["rg"]}, ["matcher", "detectors", "0"], "unknown value"),
        ({"colour": "red"}, ["matcher", "colour"], "unknown condition"),
        ({"patterns": ["(a"]}, ["matcher", "patterns"], "pattern 0 is not a valid RE2"),
        ({"patterns": [r"(a)\1"]}, ["matcher", "patterns"], "invalid escape"),
        ({"patterns": ["(?=look)ahead"]}, ["matcher", "patterns"], "not a valid RE2"),
        ({"patterns": ["a{1001}"]}, ["matcher", "patterns"], "repetition"),
        ({"patterns": ["x" * 501]}, ["matcher", "patterns"], "1 to 500 characters"),
        ({"patterns": ["((((a{100}){100}){100}){100})"]}, ["matcher", "patterns"], "RE2"),
        ({"keywords": ["   "]}, ["matcher", "keywords"], "keyword 0"),
        ({"keywords": []}, ["matcher", "keywords"], "at least 1"),
        ({"estimated_tokens_above": -1}, ["matcher", "estimated_tokens_above"], "greater than"),
        ({"agents": {}}, ["matcher", "agents"], "at least one agent id or category"),
        ({"agents": {"ids": ["nope"]}}, ["matcher", "agents", "ids", "0"], "uuid"),
        ({"action_types": ["send email"]}, ["matcher", "action_types"], "action type"),
        ({"requester_roles": ["owner"]}, ["matcher", "requester_roles", "0"], "unknown value"),
    ],
)
def test_invalid_matchers_are_refused_with_the_reason(
    raw: dict[str, object], loc: list[str], fragment: str
) -> None:
    problems = _problems(raw)
    assert problems[0]["loc"] == loc
    assert fragment.lower() in str(problems[0]["msg"]).lower()


def test_a_matcher_that_is_not_an_object_is_refused() -> None:
    assert _problems(["cpf"]) == [{"loc": ["matcher"], "msg": "a matcher is a JSON object"}]


def test_every_problem_is_named_and_the_message_names_the_first() -> None:
    with pytest.raises(InvalidMatcher) as caught:
        parse_matcher({"detectors": ["rg"], "patterns": ["("]})
    assert len(caught.value.details or []) == 2
    assert caught.value.message.startswith("the matcher is invalid: matcher.")


def test_conditions_are_anded_and_lists_are_ored() -> None:
    matcher = parse_matcher({"subject_kinds": ["chat.message"], "detectors": ["cpf", "email"]})
    assert _matches(matcher, Subject(kind="chat.message", text="mail a@b.com.br")) == [
        "subject kind is chat.message",
        "text contains a email",
    ]
    assert _matches(matcher, Subject(kind="chat.message", text="nothing personal")) is None
    assert _matches(matcher, Subject(kind="agent.action", text="cpf 529.982.247-25")) is None


def test_keywords_ignore_case_accents_and_spacing() -> None:
    matcher = parse_matcher({"keywords": ["ação judicial"]})
    assert _matches(matcher, Subject(kind="chat.message", text="Uma ACAO   Judicial foi aberta"))
    assert _matches(matcher, Subject(kind="chat.message", text="uma ação trabalhista")) is None


def test_patterns_match_the_raw_text() -> None:
    matcher = parse_matcher({"patterns": ["nothing", r"contrato\s+\d{4}"]})
    assert _matches(matcher, Subject(kind="chat.message", text="ver contrato  2024")) == [
        "text matches pattern 1"
    ]
    assert _matches(matcher, Subject(kind="chat.message", text="ver CONTRATO 2024")) is None


def test_agents_match_by_id_or_category() -> None:
    agent = uuid.uuid4()
    matcher = parse_matcher({"agents": {"ids": [str(agent)], "categories": ["sales"]}})
    assert _matches(matcher, Subject(kind="agent.action", agent_id=agent))
    assert _matches(matcher, Subject(kind="agent.action", agent_category="Sales"))
    assert _matches(matcher, Subject(kind="agent.action", agent_id=uuid.uuid4())) is None


def test_action_types_and_requester_roles() -> None:
    matcher = parse_matcher({"action_types": ["email.send"], "requester_roles": ["member"]})
    ok = Subject(kind="agent.action", action_type="EMAIL.SEND", requester_roles={"member"})
    assert _matches(matcher, ok)
    assert _matches(matcher, ok.model_copy(update={"requester_roles": {"admin"}})) is None
    assert _matches(matcher, ok.model_copy(update={"action_type": "sms.send"})) is None


def test_tokens_above_a_threshold_use_the_given_count_or_an_estimate() -> None:
    matcher = parse_matcher({"estimated_tokens_above": 10})
    assert _matches(matcher, Subject(kind="chat.message", text="x" * 44))  # 11 tokens
    assert _matches(matcher, Subject(kind="chat.message", text="x" * 40)) is None  # 10
    assert _matches(matcher, Subject(kind="chat.message", text="", estimated_tokens=11))


def test_a_trusted_stored_matcher_skips_only_the_per_pattern_compile() -> None:
    # Stored matchers were validated on write; loading them must not pay RE2 compiles twice,
    # but the structure is still checked.
    assert parse_matcher({"patterns": ["("]}, trusted=True).patterns == ["("]
    with pytest.raises(InvalidMatcher):
        parse_matcher({"colour": "red"}, trusted=True)
    with pytest.raises(InvalidMatcher):
        parse_matcher({"patterns": ["("]})
