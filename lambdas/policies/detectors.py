"""Detectors of Brazilian personal data in free text (pure; no I/O).

CPF and CNPJ candidates count only when their check digits are right (and a CPF is not one
repeated digit), so an order number of the same shape is not personal data. CNPJ accepts the
alphanumeric form in force since July 2026 (12 characters from [0-9A-Z], 2 numeric check
digits). The patterns are fixed and run on RE2 (linear time, one C++ pass each); RE2 has no
lookaround, so the "not part of a longer number" boundaries are checked around each
candidate here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

import re2  # type: ignore[import-untyped]

Detector = Literal["cpf", "cnpj", "email", "phone"]


def _compile(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


def _bounded(text: str, start: int, end: int, inside: str) -> bool:
    """The match is not part of a longer token: no letter or digit (or ``inside`` character)
    right before or after it."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalnum() or before in inside or after.isalnum() or after in inside)


DETECTORS: tuple[Detector, ...] = ("cpf", "cnpj", "email", "phone")

_CPF = _compile(r"(\d{3})\.?(\d{3})\.?(\d{3})-?(\d{2})")
_CNPJ = _compile(r"([\dA-Z]{2})\.?([\dA-Z]{3})\.?([\dA-Z]{3})/?([\dA-Z]{4})-?(\d{2})")
_EMAIL = _compile(
    r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"[A-Za-z0-9][A-Za-z0-9-]{0,62}(?:\.[A-Za-z0-9][A-Za-z0-9-]{0,62})*\.[A-Za-z]{2,24}"
)
# +55 (11) 91234-5678, (11) 1234-5678, 11 912345678, 5511912345678: an area code (DDD), then
# a mobile number (9 + 8 digits) or a landline (8 digits starting 2-5).
_PHONE_PATTERN = (
    r"(?:\+?55[\s.-]?)?(?:\(\s?(\d{2})\s?\)|(\d{2}))[\s.-]?(9\d{4}|[2-5]\d{3})[\s.-]?(\d{4})"
)
_PHONE = _compile(_PHONE_PATTERN)
_PHONE_EXACT = re.compile(_PHONE_PATTERN)
_AREA_CODES = frozenset(
    {11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22, 24, 27, 28, 31, 32, 33, 34, 35, 37, 38}
    | {41, 42, 43, 44, 45, 46, 47, 48, 49, 51, 53, 54, 55, 61, 62, 63, 64, 65, 66, 67, 68, 69}
    | {71, 73, 74, 75, 77, 79, 81, 82, 83, 84, 85, 86, 87, 88, 89}
    | {91, 92, 93, 94, 95, 96, 97, 98, 99}
)


def _mod11_digit(values: list[int], weights: list[int]) -> int:
    remainder = sum(v * w for v, w in zip(values, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder


def is_valid_cpf(value: str) -> bool:
    """A CPF (11 digits, punctuation optional) whose two check digits are right."""
    digits = [int(c) for c in value if c.isdigit()]
    if len(digits) != 11 or len(set(digits)) == 1 or len(value) > 14:
        return False
    first = _mod11_digit(digits[:9], list(range(10, 1, -1)))
    second = _mod11_digit(digits[:10], list(range(11, 1, -1)))
    return digits[9] == first and digits[10] == second


_CNPJ_WEIGHTS = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]


def is_valid_cnpj(value: str) -> bool:
    """A CNPJ, numeric or alphanumeric (each character counts as its code point minus 48),
    whose two check digits are right."""
    chars = [c for c in value.upper() if c.isascii() and c.isalnum()]
    if len(chars) != 14 or not (chars[12].isdigit() and chars[13].isdigit()):
        return False
    if len(set(chars)) == 1:
        return False
    values = [ord(c) - 48 for c in chars]
    first = _mod11_digit(values[:12], _CNPJ_WEIGHTS)
    second = _mod11_digit(values[:13], [6, *_CNPJ_WEIGHTS])
    return values[12] == first and values[13] == second


def is_valid_br_phone(value: str) -> bool:
    """A Brazilian phone number with a real area code: mobile (9 + 8 digits) or landline."""
    match = _PHONE_EXACT.fullmatch(value.strip())
    if match is None:
        return False
    return int(match.group(1) or match.group(2)) in _AREA_CODES


def contains_cpf(text: str) -> bool:
    return any(
        _bounded(text, m.start(), m.end(), "") and is_valid_cpf(m.group(0))
        for m in _CPF.finditer(text)
    )


def contains_cnpj(text: str) -> bool:
    return any(
        _bounded(text, m.start(), m.end(), "") and is_valid_cnpj(m.group(0))
        for m in _CNPJ.finditer(text)
    )


def contains_email(text: str) -> bool:
    if "@" not in text:
        return False
    return any(_bounded(text, m.start(), m.end(), "_.+-@") for m in _EMAIL.finditer(text))


def contains_phone(text: str) -> bool:
    return any(
        _bounded(text, m.start(), m.end(), "+") and int(m.group(1) or m.group(2)) in _AREA_CODES
        for m in _PHONE.finditer(text)
    )


FIND: dict[Detector, Callable[[str], bool]] = {
    "cpf": contains_cpf,
    "cnpj": contains_cnpj,
    "email": contains_email,
    "phone": contains_phone,
}
