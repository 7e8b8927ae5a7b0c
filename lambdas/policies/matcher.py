"""The matcher language of policy rules, its parser and the subject it is matched against.

A matcher is a JSON object; every condition it states must hold (AND), and each list holds
when any of its items does (OR). An empty matcher matches every subject. See docs/policies.md.

    {"subject_kinds": ["chat.message"], "detectors": ["cpf"]}

Regular expressions use RE2 (linear time, no backreferences or lookaround), each compiled
with a bounded program size; all the patterns of a rule set run in one pass (``PatternSet``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from uuid import UUID

import re2  # type: ignore[import-untyped]
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lambdas.policies.detectors import DETECTORS, FIND, Detector
from lambdas.policies.subject import SUBJECT_KINDS, Role, Subject, SubjectKind
from lambdas.shared.errors import ValidationFailed

MAX_ITEMS = 50
MAX_PATTERNS = 20
MAX_PATTERN_LENGTH = 500
MAX_KEYWORD_LENGTH = 200
PATTERN_MAX_MEM = 1 << 20  # bytes of compiled program per pattern
SET_MAX_MEM = 64 << 20  # the one-pass set of every pattern of a rule set


class InvalidMatcher(ValidationFailed):
    code = "invalid_matcher"


def _options(max_mem: int) -> Any:
    options = re2.Options()
    options.max_mem = max_mem
    options.log_errors = False
    return options


def compile_pattern(pattern: str) -> Any:
    """The RE2 program of ``pattern``; raises ``ValueError`` with RE2's reason."""
    try:
        return re2.compile(pattern, _options(PATTERN_MAX_MEM))
    except re2.error as error:
        reason = error.args[0] if error.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"not a valid RE2 regular expression ({reason})") from None


_MARKS = re.compile("[\u0300-\u036f]")  # combining diacritical marks (accents, cedilla)


def normalize(text: str) -> str:
    """Case- and accent-insensitive form used for keywords: NFKD, marks dropped, casefolded,
    whitespace runs collapsed to one space."""
    stripped = _MARKS.sub("", unicodedata.normalize("NFKD", text))
    return " ".join(stripped.casefold().split())


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


class AgentCondition(BaseModel):
    """The acting agent is one of ``ids`` or belongs to one of ``categories``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ids: list[UUID] = Field(default_factory=list, max_length=MAX_ITEMS)
    categories: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.strip() or len(item) > 100:
                raise ValueError("a category is 1 to 100 characters")
        return _unique([item.strip().lower() for item in value])

    @field_validator("ids")
    @classmethod
    def _ids(cls, value: list[UUID]) -> list[UUID]:
        return _unique(value)

    @model_validator(mode="after")
    def _not_empty(self) -> AgentCondition:
        if not self.ids and not self.categories:
            raise ValueError("name at least one agent id or category")
        return self


class Matcher(BaseModel):
    """A parsed, validated matcher. Build it with ``parse_matcher``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject_kinds: list[SubjectKind] | None = Field(default=None, min_length=1)
    agents: AgentCondition | None = None
    action_types: list[str] | None = Field(default=None, min_length=1, max_length=MAX_ITEMS)
    keywords: list[str] | None = Field(default=None, min_length=1, max_length=MAX_ITEMS)
    patterns: list[str] | None = Field(default=None, min_length=1, max_length=MAX_PATTERNS)
    detectors: list[Detector] | None = Field(default=None, min_length=1)
    estimated_tokens_above: int | None = Field(default=None, ge=0, le=10_000_000)
    requester_roles: list[Role] | None = Field(default=None, min_length=1)

    @field_validator("subject_kinds", "detectors", "requester_roles")
    @classmethod
    def _dedupe(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique(value)

    @field_validator("action_types")
    @classmethod
    def _action_types(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for item in value:
            if not item or len(item) > 100 or not item.replace(".", "").replace("_", "").isalnum():
                raise ValueError(
                    "an action type is 1 to 100 letters, digits, '.' or '_' (e.g. email.send)"
                )
        return _unique([item.lower() for item in value])

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        normalized = [normalize(item) for item in value]
        for index, item in enumerate(normalized):
            if not item or len(item) > MAX_KEYWORD_LENGTH:
                raise ValueError(
                    f"keyword {index} must have 1 to {MAX_KEYWORD_LENGTH} non-blank characters"
                )
        return _unique(normalized)

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        if info.context and info.context.get("trusted"):
            return value  # validated when stored; compiled again into the rule set's RE2 set
        for index, pattern in enumerate(value):
            if not pattern or len(pattern) > MAX_PATTERN_LENGTH:
                raise ValueError(f"pattern {index} must have 1 to {MAX_PATTERN_LENGTH} characters")
            try:
                compile_pattern(pattern)
            except ValueError as error:
                raise ValueError(f"pattern {index} is {error}") from None
        return _unique(value)

    def document(self) -> dict[str, Any]:
        """The canonical JSON form that is stored (no nulls, normalized lists)."""
        return self.model_dump(mode="json", exclude_none=True)


def _problems(error: ValidationError) -> list[dict[str, Any]]:
    problems = []
    for err in error.errors(include_url=False):
        message = str(err.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            message = "unknown condition; see docs/policies.md for the language"
        elif err.get("type") == "literal_error":
            message = f"unknown value; {message.lower()}"
        problems.append({"loc": ["matcher", *[str(p) for p in err.get("loc", ())]], "msg": message})
    return problems


def parse_matcher(raw: object, *, trusted: bool = False) -> Matcher:
    """Validate a matcher document; raises ``InvalidMatcher`` (422) naming every problem.

    ``trusted``: the document was validated when it was stored; skip compiling each pattern
    on its own (the rule set compiles them all into one RE2 set anyway).
    """
    if not isinstance(raw, Mapping):
        raise InvalidMatcher(
            "the matcher is invalid",
            details=[{"loc": ["matcher"], "msg": "a matcher is a JSON object"}],
        )
    try:
        return Matcher.model_validate(dict(raw), context={"trusted": trusted})
    except ValidationError as error:
        problems = _problems(error)
        first = problems[0]
        where = ".".join(first["loc"])
        raise InvalidMatcher(
            f"the matcher is invalid: {where}: {first['msg']}", details=problems
        ) from None


@dataclass
class PreparedSubject:
    """A subject with its derived views computed once per evaluation, on first use."""

    subject: Subject
    pattern_hits: frozenset[int] = frozenset()
    _detected: dict[Detector, bool] = field(default_factory=dict)

    @cached_property
    def normalized_text(self) -> str:
        return normalize(self.subject.text)

    def detected(self, detector: Detector) -> bool:
        if detector not in self._detected:
            self._detected[detector] = FIND[detector](self.subject.text)
        return self._detected[detector]


class PatternSet:
    """Every distinct pattern of a rule set, compiled into one RE2 set that finds which
    patterns occur in a text in a single pass."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.index: dict[str, int] = {}
        self._set: Any = None
        unique = _unique(list(patterns))
        if not unique:
            return
        search = re2.Set.SearchSet(_options(SET_MAX_MEM))
        for pattern in unique:
            self.index[pattern] = search.Add(pattern)
        search.Compile()
        self._set = search

    def hits(self, text: str) -> frozenset[int]:
        if self._set is None or not text:
            return frozenset()
        return frozenset(self._set.Match(text.encode("utf-8")) or ())


Check = Callable[[Matcher, PreparedSubject, PatternSet], str | None]


def _kind(m: Matcher, p: PreparedSubject, _: PatternSet) -> str | None:
    kinds = m.subject_kinds or ()
    return f"subject kind is {p.subject.kind}" if p.subject.kind in kinds else None


def _agent(m: Matcher, p: PreparedSubject, _: PatternSet) -> str | None:
    condition = m.agents
    if condition is None:
        return None
    if p.subject.agent_id is not None and p.subject.agent_id in condition.ids:
        return f"agent is {p.subject.agent_id}"
    category = (p.subject.agent_category or "").lower()
    return f"agent category is {category}" if category in condition.categories else None


def _action(m: Matcher, p: PreparedSubject, _: PatternSet) -> str | None:
    action = (p.subject.action_type or "").lower()
    return f"action type is {action}" if action in (m.action_types or ()) else None


def _role(m: Matcher, p: PreparedSubject, _: PatternSet) -> str | None:
    roles = sorted(set(m.requester_roles or ()) & p.subject.requester_roles)
    return f"requester has role {roles[0]}" if roles else None


def _tokens(m: Matcher, p: PreparedSubject, _: PatternSet) -> str | None:
    threshold = m.estimated_tokens_above or 0
    return f"estimated tokens above {threshold}" if p.subject.tokens > threshold else None


def _detector(m: Matcher, p: PreparedSubject, _: PatternSet) -> str | None:
    found = next((d for d in m.detectors or () if p.detected(d)), None)
    if found is None:
        return None
    return f"text contains a {'valid ' if found in ('cpf', 'cnpj') else ''}{found}"


def _keyword(m: Matcher, p: PreparedSubject, _: PatternSet) -> str | None:
    text = p.normalized_text
    keyword = next((k for k in m.keywords or () if k in text), None)
    return None if keyword is None else f"text mentions keyword {keyword!r}"


def _pattern(m: Matcher, p: PreparedSubject, patterns: PatternSet) -> str | None:
    hits = p.pattern_hits
    index = next((i for i, x in enumerate(m.patterns or ()) if patterns.index[x] in hits), None)
    return None if index is None else f"text matches pattern {index}"


# Cheapest first, so a failing condition spares the text scans.
_CHECKS: tuple[tuple[str, Check], ...] = (
    ("subject_kinds", _kind),
    ("agents", _agent),
    ("action_types", _action),
    ("requester_roles", _role),
    ("estimated_tokens_above", _tokens),
    ("patterns", _pattern),
    ("keywords", _keyword),
    ("detectors", _detector),
)


def match(matcher: Matcher, subject: PreparedSubject, patterns: PatternSet) -> list[str] | None:
    """The conditions that held, in words (no subject content), or None if one did not."""
    held: list[str] = []
    for name, check in _CHECKS:
        if getattr(matcher, name) is None:
            continue
        reason = check(matcher, subject, patterns)
        if reason is None:
            return None
        held.append(reason)
    return held or ["the matcher has no conditions"]


__all__ = [
    "DETECTORS",
    "SUBJECT_KINDS",
    "InvalidMatcher",
    "Matcher",
    "PatternSet",
    "PreparedSubject",
    "Role",
    "Subject",
    "SubjectKind",
    "match",
    "normalize",
    "parse_matcher",
]
