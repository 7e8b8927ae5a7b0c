"""Normalised identifiers of a lead (pure; no I/O): the forms duplicates, the suppression list
and the unique indexes compare.

E-mail: trimmed, lower-cased (the local part too: mailbox providers treat it case-blind in
practice), the domain in its IDNA (punycode) form. Phone: E.164; a number without a country
code is Brazilian (an area code, then a mobile or landline number), trunk and carrier prefixes
(0, 0 + two-digit carrier code) are dropped. CPF and CNPJ are checked by their check digits.
"""

from __future__ import annotations

import re
from typing import Literal

from lambdas.policies.detectors import is_valid_br_phone, is_valid_cnpj, is_valid_cpf

TaxIdKind = Literal["cpf", "cnpj"]

_EMAIL = re.compile(r"[a-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")
_INTERNATIONAL = re.compile(r"\+[1-9][0-9]{7,14}")


class InvalidIdentifier(ValueError):
    """A value that is not a usable e-mail, phone or tax id; ``field`` names which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def normalize_email(value: str) -> str:
    """The comparable form of an e-mail address, or InvalidIdentifier."""
    text = value.strip()
    local, sep, domain = text.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidIdentifier("email", "not an e-mail address")
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii")
    except UnicodeError as error:
        raise InvalidIdentifier("email", "the e-mail domain is not valid") from error
    candidate = f"{local}@{ascii_domain}".lower()
    if "." not in ascii_domain or ".." in candidate or not _EMAIL.fullmatch(candidate):
        raise InvalidIdentifier("email", "not an e-mail address")
    return candidate


def normalize_phone(value: str) -> str:
    """The E.164 form of a phone number (Brazilian unless it starts with another +country)."""
    text = value.strip()
    digits = "".join(c for c in text if c.isdigit())
    if text.startswith("+") and not digits.startswith("55"):
        candidate = f"+{digits}"
        if not _INTERNATIONAL.fullmatch(candidate):
            raise InvalidIdentifier("phone", "not a phone number")
        return candidate
    if text.startswith("+") or (len(digits) in (12, 13) and digits.startswith("55")):
        national = digits[2:]
    else:
        national = digits
        if national.startswith("0") and len(national) in (13, 14):
            national = national[3:]  # 0 + carrier code (e.g. 0 21 11 91234-5678)
        elif national.startswith("0"):
            national = national[1:]  # trunk prefix
    if len(national) not in (10, 11) or not is_valid_br_phone(national):
        raise InvalidIdentifier("phone", "not a Brazilian phone number")
    return f"+55{national}"


def normalize_tax_id(value: str) -> tuple[TaxIdKind, str]:
    """A CPF or CNPJ without punctuation (upper-case for the alphanumeric CNPJ), with its kind,
    or InvalidIdentifier when the check digits are wrong."""
    compact = "".join(c for c in value.upper() if c.isascii() and c.isalnum())
    if len(compact) == 11 and compact.isdigit() and is_valid_cpf(compact):
        return "cpf", compact
    if len(compact) == 14 and is_valid_cnpj(compact):
        return "cnpj", compact
    raise InvalidIdentifier("company_tax_id", "not a valid CPF or CNPJ")
