"""Parsing and per-row validation of a leads CSV file (pure; no I/O).

Each row is normalised (e-mail, E.164 phone, CPF/CNPJ), then checked against the rows before
it in the file (duplicates by normalised e-mail or phone). Checks against the tenant's leads
and the suppression list need the database and live in ``ImportService``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Final

from pydantic import ValidationError

from lambdas.leads.errors import InvalidLead
from lambdas.leads.models import LeadFields
from lambdas.leads.service import normalized

MAX_IMPORT_BYTES: Final = 5 * 1024 * 1024
MAX_IMPORT_ROWS: Final = 50_000
COLUMNS: Final = ("full_name", "email", "phone", "company", "company_tax_id", "job_title", "tags")


class InvalidImportFile(ValueError):
    """The file as a whole cannot be read as a leads CSV (encoding, header, size)."""


@dataclass(frozen=True)
class ParsedRow:
    line: int  # the row's line number in the file (the header is line 1)
    fields: LeadFields
    email: str | None
    phone: str | None


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str
    field: str | None = None


@dataclass
class ParsedFile:
    rows: list[ParsedRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.rejected)


def _text(data: bytes) -> str:
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidImportFile(f"the file exceeds {MAX_IMPORT_BYTES} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidImportFile("the file is not UTF-8 text") from error


def _header(reader: csv.DictReader[str]) -> list[str]:
    names = [name.strip().lower() for name in reader.fieldnames or []]
    if not names:
        raise InvalidImportFile("the file is empty")
    unknown = sorted(set(names) - set(COLUMNS))
    if unknown:
        raise InvalidImportFile(f"unknown columns: {', '.join(unknown)}")
    if len(set(names)) != len(names):
        raise InvalidImportFile("a column appears twice")
    if not {"email", "phone"} & set(names):
        raise InvalidImportFile("the file needs an email or a phone column")
    return names


def _row_fields(values: dict[str, str], *, legal_basis: str) -> LeadFields:
    data: dict[str, object] = {k: v.strip() for k, v in values.items() if v and v.strip()}
    if "tags" in data:
        data["tags"] = [t.strip() for t in str(data["tags"]).split(";") if t.strip()]
    return LeadFields.model_validate(data | {"source": "import", "legal_basis": legal_basis})


def parse_leads_csv(data: bytes, *, legal_basis: str = "legitimate_interest") -> ParsedFile:
    """Every row of the file, valid or rejected with its reason; InvalidImportFile when the
    file itself is unusable."""
    text = _text(data)
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        names = _header(reader)
        reader.fieldnames = names
        parsed = ParsedFile()
        seen: dict[tuple[str, str], int] = {}
        for values in reader:
            line = reader.line_num
            if parsed.total >= MAX_IMPORT_ROWS:
                raise InvalidImportFile(f"the file has more than {MAX_IMPORT_ROWS} rows")
            if None in values:
                parsed.rejected.append(RejectedRow(line, "more values than columns"))
                continue
            parsed_row = _validated(line, values, legal_basis, seen)
            if isinstance(parsed_row, RejectedRow):
                parsed.rejected.append(parsed_row)
            else:
                parsed.rows.append(parsed_row)
    except csv.Error as error:
        raise InvalidImportFile(f"malformed CSV near line {reader.line_num}: {error}") from error
    return parsed


def _validated(
    line: int, values: dict[str, str], legal_basis: str, seen: dict[tuple[str, str], int]
) -> ParsedRow | RejectedRow:
    try:
        fields = _row_fields(values, legal_basis=legal_basis)
        fields, email, phone = normalized(fields)
    except ValidationError as error:
        first = error.errors()[0]
        return RejectedRow(line, str(first["msg"]), ".".join(str(p) for p in first["loc"]))
    except InvalidLead as error:
        loc = error.details[0]["loc"][0] if error.details else None
        return RejectedRow(line, error.message, str(loc) if loc else None)
    if not email and not phone:
        return RejectedRow(line, "an e-mail or a phone is required")
    for kind, value in (("email", email), ("phone", phone)):
        if value and (kind, value) in seen:
            return RejectedRow(line, f"duplicate of line {seen[kind, value]} in this file", kind)
    for kind, value in (("email", email), ("phone", phone)):
        if value:
            seen[kind, value] = line
    return ParsedRow(line, fields, email, phone)
