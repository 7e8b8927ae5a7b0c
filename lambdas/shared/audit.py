"""The audit chain: the writer every route uses, and the verification core (docs/audit.md).

``AuditWriter.append`` calls ``alquimista_platform.audit_append_v3`` on the caller's connection,
so the audit row commits or rolls back with the change it records; ``ChangeWriter.record`` sends
a change's audit row and its outbox event in one statement (``UnitOfWork.record``). The function
assigns the tenant's next seq under the tenant's head lock and computes the hashes; this module
recomputes them independently with RFC 8785 canonical JSON (the ``rfc8785`` library, or an
equivalent fast path for the plain values the writer accepts) and never trusts a hash it reads.

Audit metadata carries ids and hashes only, never personal data (names, e-mails, phones, CPF,
addresses, IPs): the append function refuses keys that name such data, and LGPD erasure, which
deletes personal data where it lives, then leaves the chain intact.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring as _encode_string
from typing import Any, Literal, LiteralString, NamedTuple
from uuid import UUID, uuid4

import rfc8785
from aws_lambda_powertools.metrics import MetricUnit
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from lambdas.shared.constants import (
    AUDIT_DENIALS_SUPPRESSED_METRIC,
    AUDIT_DENIED_PER_SOURCE_PER_MINUTE,
    PLATFORM_TENANT,
)
from lambdas.shared.db import Connection
from lambdas.shared.observability import metrics
from lambdas.shared.scope import EventDraft

HASH_VERSION = 1
CHAIN_PREFIX = b"alquimista-audit/v1\n"
GENESIS_HASH = bytes(32)
MAX_SAFE_INTEGER = 2**53 - 1

ActorType = Literal["user", "agent", "system"]
Outcome = Literal["success", "denied", "error"]

_APPEND_SQL: LiteralString = """
    SELECT id, seq, row_hash, occurred_at
    FROM alquimista_platform.audit_append_v3(%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""

# A change's audit row and its outbox event in one query (one round trip): the append runs
# first (the function scan), then the event (the select list, once for the append's one row).
# The payload is sent once and is both the row's metadata and the event's payload. It is the
# one definition of how a change is recorded: ``ChangeWriter.record`` sends it as it is, a
# statement that records a change along with its own writes (the chat answer's) reads it as a
# CTE; either takes its parameters from ``record_params``.
RECORD_QUERY: LiteralString = """
    SELECT a.id, a.seq, a.row_hash, a.occurred_at,
           alquimista_platform.outbox_append_v1(
               %(event_id)s, %(tenant)s, %(aggregate_type)s, %(aggregate_id)s, %(event_type)s,
               %(version)s, %(payload)s) AS event_seq
    FROM alquimista_platform.audit_append_v3(
        %(tenant)s, %(actor)s, %(actor_type)s, %(event_type)s, %(aggregate_type)s,
        %(aggregate_id)s, 'success', %(request)s, %(payload)s) AS a
"""

_DENIED_SQL: LiteralString = """
    SELECT id, seq, row_hash, occurred_at
    FROM alquimista_platform.audit_append_denied_v2(%s, %s, %s, %s, %s, %s, %s, %s)
"""


@dataclass(frozen=True)
class AuditRecord:
    """What an append wrote: the row's id, its place in the tenant's chain and its hash."""

    id: UUID
    seq: int
    row_hash: str
    occurred_at: datetime


def _record(row: tuple[Any, ...] | None) -> AuditRecord | None:
    if row is None:
        return None
    id_, seq, row_hash, occurred_at = row
    return AuditRecord(id=id_, seq=seq, row_hash=bytes(row_hash).hex(), occurred_at=occurred_at)


class AuditWriter:
    """Appends audit rows for one request (tenant, actor, request id) on its connection."""

    def __init__(
        self,
        conn: Connection,
        *,
        tenant_id: UUID,
        actor_id: UUID | None,
        actor_type: str = "user",
        request_id: str | None = None,
    ) -> None:
        self._conn = conn
        self._tenant_id = tenant_id
        self._actor_id = actor_id
        self._actor_type = actor_type
        self._request_id = request_id

    def append(
        self,
        action: str,
        *,
        resource_type: str,
        resource_id: str | None = None,
        outcome: str = "success",
        details: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Append one row in the current transaction. ``details`` holds ids and hashes only
        (lower snake case keys; strings, safe integers, booleans, null, lists, objects)."""
        # a cursor of its own, returning tuples whatever the connection's row factory
        row = (
            self._conn.cursor(row_factory=tuple_row)
            .execute(
                _APPEND_SQL,
                (
                    self._tenant_id,
                    self._actor_id,
                    self._actor_type,
                    action,
                    resource_type,
                    resource_id,
                    outcome,
                    self._request_id,
                    Jsonb(dict(details or {})),
                ),
            )
            .fetchone()
        )
        record = _record(row)
        if record is None:
            raise LookupError("audit_append_v3 returned no row")
        return record


@dataclass(frozen=True)
class RecordedChange:
    """What ``ChangeWriter.record`` wrote: the audit row and the event's id and seq."""

    audit: AuditRecord
    event_id: UUID
    event_seq: int


class ChangeWriter:
    """Records one state change of a request in its transaction, in one statement: the audit row
    (``audit_append_v3``, action and resource named after the event) and the outbox event
    (``outbox_append_v1``). A transaction scoped to no tenant (``tenant_id`` None) writes the
    platform's chain and a platform event, as ``PlatformAuditWriter`` and ``OutboxWriter`` do."""

    def __init__(
        self,
        conn: Connection,
        *,
        tenant_id: UUID | None,
        actor_id: UUID | None,
        actor_type: str = "user",
        request_id: str | None = None,
    ) -> None:
        self._conn = conn
        self._tenant_id = tenant_id or PLATFORM_TENANT
        self._actor_id = actor_id
        self._actor_type = actor_type
        self._request_id = request_id

    def record(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> RecordedChange:
        """Append the audit row and the event; the payload is checked against the event catalog
        and is the row's details too (ids and non-personal fields only)."""
        params = record_params(
            EventDraft(event_type, aggregate_type, str(aggregate_id), payload, version),
            tenant_id=self._tenant_id,
            actor_id=self._actor_id,
            actor_type=self._actor_type,
            request_id=self._request_id,
        )
        row = (
            self._conn.cursor(row_factory=tuple_row)
            .execute(
                RECORD_QUERY,
                params,
            )
            .fetchone()
        )
        if row is None:
            raise LookupError("audit_append_v3 returned no row")
        id_, seq, row_hash, occurred_at, event_seq = row
        record = AuditRecord(
            id=id_, seq=seq, row_hash=bytes(row_hash).hex(), occurred_at=occurred_at
        )
        return RecordedChange(audit=record, event_id=params["event_id"], event_seq=event_seq)


def record_params(
    event: EventDraft,
    *,
    tenant_id: UUID,
    actor_id: UUID | None,
    actor_type: str,
    request_id: str | None,
) -> dict[str, Any]:
    """The parameters of ``RECORD_QUERY`` for ``event``, recorded by the request's actor in
    ``tenant_id``'s chain: the audit row's action is the event type, its resource the
    aggregate, its outcome 'success' and its details the event's payload, checked against the
    event catalog (ids and non-personal fields only); the event gets a new id
    (``params["event_id"]``)."""
    # the catalog's models load with the first write, never on a read (scripts/bench/imports.py)
    from lambdas.shared.events import validated_payload  # noqa: PLC0415

    data = validated_payload(event.event_type, event.version, event.aggregate_type, event.payload)
    return {
        "event_id": uuid4(),
        "tenant": tenant_id,
        "actor": actor_id,
        "actor_type": actor_type,
        "event_type": event.event_type,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": str(event.aggregate_id),
        "version": event.version,
        "request": request_id,
        "payload": Jsonb(data),
    }


class PlatformAuditWriter:
    """Appends to the platform's own chain (``PLATFORM_TENANT``, migration 029) the writes of a
    transaction scoped to no tenant (public routes, unmatched webhooks). ``audit_append_v3``
    accepts the platform tenant only in such a transaction (migrations 034, 057), so the
    transaction's scope is left as it is.

    A ``denied`` row here is an unauthenticated refusal, which costs its sender nothing: at most
    ``denied_per_minute`` of them are recorded per source (action, resource) and minute, and the
    rest only counted in the ``AuditDenialsSuppressed`` metric (``append`` returns None)."""

    def __init__(
        self,
        conn: Connection,
        *,
        actor_id: UUID | None,
        actor_type: str = "anonymous",
        request_id: str | None = None,
        denied_per_minute: int = AUDIT_DENIED_PER_SOURCE_PER_MINUTE,
    ) -> None:
        self._conn = conn
        self._writer = AuditWriter(
            conn,
            tenant_id=PLATFORM_TENANT,
            actor_id=actor_id,
            actor_type=actor_type,
            request_id=request_id,
        )
        self._actor_id = actor_id
        self._actor_type = actor_type
        self._request_id = request_id
        self._denied_per_minute = denied_per_minute

    def append(
        self,
        action: str,
        *,
        resource_type: str,
        resource_id: str | None = None,
        outcome: str = "success",
        details: Mapping[str, Any] | None = None,
    ) -> AuditRecord | None:
        if outcome != "denied":
            return self._writer.append(
                action,
                resource_type=resource_type,
                resource_id=resource_id,
                outcome=outcome,
                details=details,
            )
        row = (
            self._conn.cursor(row_factory=tuple_row)
            .execute(
                _DENIED_SQL,
                (
                    self._actor_id,
                    self._actor_type,
                    action,
                    resource_type,
                    resource_id,
                    self._request_id,
                    Jsonb(dict(details or {})),
                    self._denied_per_minute,
                ),
            )
            .fetchone()
        )
        record = _record(row)
        if record is None:
            metrics.add_metric(name=AUDIT_DENIALS_SUPPRESSED_METRIC, unit=MetricUnit.Count, value=1)
        return record


# ---- canonical JSON and hashes -----------------------------------------------------------


def _plain(value: Any) -> bool:
    """Whether ``json.dumps(sort_keys=True)`` already writes ``value`` as RFC 8785 does: ASCII
    keys (sorted by code point = by UTF-16 code unit), no floats, safe integers."""
    if value is None or isinstance(value, (str, bool)):
        return True
    if isinstance(value, int):
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and key.isascii() and _plain(item) for key, item in value.items()
        )
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    return False


# json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) without building
# an encoder per call: the C encoder, made once.
_encode_sorted = c_make_encoder(None, None, _encode_string, None, ":", ",", True, False, False)


def _dumps_sorted(value: Any) -> str:
    return "".join(_encode_sorted(value, 0))


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON of ``value`` (UTF-8)."""
    if _plain(value):
        return _dumps_sorted(value).encode()
    return rfc8785.dumps(value)


class JsonText(str):
    """A JSON document as stored (jsonb's text), for the verifier to parse itself."""


class _NotPlain(Exception):
    """The document holds a number with a fraction or an exponent."""


def _refuse_float(_: str) -> Any:
    raise _NotPlain


# Parses with the C scanner and stops at the first non-integer number; integers of 16 digits or
# more (outside +-(2^53 - 1) or close to it) are found by a search of the text instead of a hook
# per integer. Either sends the document to the library.
_scan_integers_only = json.JSONDecoder(parse_float=_refuse_float).scan_once  # type: ignore[attr-defined]
_LONG_DIGITS = re.compile(r"[0-9]{16}")


def canonical_json_text(text: str) -> bytes:
    """RFC 8785 canonical JSON of the JSON document ``text``. Documents within the subset where
    ``json.dumps(sort_keys=True)`` writes JCS (ASCII text, so ASCII keys; integers below 16
    digits; no fractions or exponents; no \\u escapes) take the C encoder; the others
    ``canonical_json``, which hands what is outside the subset to the library."""
    # "\\u" excluded: an escaped non-ASCII key in ASCII text would sort by code point
    if text.isascii() and "\\u" not in text and _LONG_DIGITS.search(text) is None:
        try:
            value, end = _scan_integers_only(text, 0)
        except (_NotPlain, StopIteration):  # StopIteration: not JSON, json.loads says why
            pass
        else:
            if end == len(text):
                return _dumps_sorted(value).encode()
    return canonical_json(json.loads(text))


def format_timestamp(value: datetime | str) -> str:
    """The hashed form of a timestamp: UTC, microseconds, ``Z`` (a ``str`` is taken as that form
    already, as PostgreSQL's ``audit_timestamp_v1`` writes it)."""
    if isinstance(value, str):
        return value
    if value.utcoffset():
        value = value.astimezone(UTC)
    # "YYYY-MM-DDTHH:MM:SS.ffffff" (and "+00:00", dropped)
    return value.isoformat(timespec="microseconds")[:26] + "Z"


_EMPTY_PAYLOAD_HASH = hashlib.sha256(b"{}").digest()


class AuditRow(NamedTuple):
    """One stored row, as the verifier reads it (hashes as raw bytes; ids as UUIDs or their
    text, which is what is hashed; the timestamp as a datetime or its hashed text; metadata as
    a value or, read straight from the database, its ``JsonText``)."""

    id: UUID | str
    tenant_id: UUID | str
    seq: int
    occurred_at: datetime | str
    actor_id: UUID | str | None
    actor_type: str
    action: str
    resource_type: str
    resource_id: str | None
    outcome: str
    request_id: str | None
    metadata: Any
    prev_hash: bytes
    payload_hash: bytes
    row_hash: bytes
    hash_version: int = HASH_VERSION


def _string(value: str | None) -> str:
    return "null" if value is None else _encode_string(value)


def record_json(row: AuditRow) -> bytes:
    """The canonical JSON of the row's hashed fields. Keys are written in RFC 8785 order, every
    value is a JSON string (escaped as ``json.dumps(ensure_ascii=False)`` and JCS do), null or
    an integer; ids are UUIDs, whose text needs no escaping."""
    actor = "null" if row.actor_id is None else f'"{row.actor_id}"'
    return (
        f'{{"action":{_encode_string(row.action)},"actor_id":{actor},'
        f'"actor_type":{_encode_string(row.actor_type)},"id":"{row.id}",'
        f'"occurred_at":"{format_timestamp(row.occurred_at)}",'
        f'"outcome":{_encode_string(row.outcome)},'
        f'"payload_hash":"{row.payload_hash.hex()}",'
        f'"request_id":{_string(row.request_id)},"resource_id":{_string(row.resource_id)},'
        f'"resource_type":{_encode_string(row.resource_type)},"seq":{int(row.seq)},'
        f'"tenant_id":"{row.tenant_id}"}}'
    ).encode()


def payload_hash(metadata: Any) -> bytes:
    return hashlib.sha256(canonical_json(metadata)).digest()


def row_hash(prev_hash: bytes, record: bytes) -> bytes:
    return hashlib.sha256(CHAIN_PREFIX + bytes(prev_hash) + record).digest()


# ---- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """A tenant's head as recorded at ``at`` by ``source``: the external anchor (S3 Object
    Lock) or the database's own head row."""

    tenant_id: UUID
    seq: int
    row_hash: str
    at: datetime
    source: str = "external anchor"


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    last_seq: int | None = None
    last_hash: str | None = None


def _row_fault(row: AuditRow, expected: int, previous: bytes) -> tuple[int, str] | None:
    """Why ``row`` cannot be the chain's row ``expected`` after a row hashing to ``previous``."""
    if row.seq != expected:
        if row.seq > expected:
            return expected, f"row {expected} is missing (next row has seq {row.seq})"
        return row.seq, f"seq {row.seq} appears out of order (expected {expected})"
    if row.hash_version != HASH_VERSION:
        return row.seq, f"unknown hash version {row.hash_version}"
    if bytes(row.prev_hash) != previous:
        return row.seq, "prev_hash does not match the previous row's hash"
    if not _payload_matches(row.metadata, bytes(row.payload_hash)):
        return row.seq, "metadata does not match payload_hash"
    return None


def _payload_matches(metadata: Any, stored: bytes) -> bool:
    """Whether ``stored`` is SHA-256(JCS(metadata))."""
    try:
        if isinstance(metadata, JsonText):
            canonical = canonical_json_text(metadata)
        elif metadata == {}:
            return stored == _EMPTY_PAYLOAD_HASH
        else:
            canonical = canonical_json(metadata)
    except (ValueError, TypeError, rfc8785.CanonicalizationError):
        return False  # not JSON, or outside what JCS can write (NaN, lone surrogates)
    return hashlib.sha256(canonical).digest() == stored


def _walk(
    rows: Iterable[AuditRow],
    expected: int,
    previous: bytes,
    anchored: dict[int, Anchor],
) -> tuple[int, bytes, tuple[int, str] | None]:
    """Check rows from seq ``expected`` on; where it stopped, the last good hash, the fault."""
    fault: tuple[int, str] | None = None
    sha256 = hashlib.sha256
    for row in rows:
        # the common case in one expression; _row_fault names what failed
        if (
            row.seq != expected
            or row.hash_version != HASH_VERSION
            or row.prev_hash != previous
            or not _payload_matches(row.metadata, row.payload_hash)
        ):
            fault = _row_fault(row, expected, previous) or (row.seq, "row does not verify")
            break
        actual = sha256(CHAIN_PREFIX + previous + record_json(row)).digest()
        if actual != row.row_hash:
            fault = (row.seq, "row fields do not match row_hash")
        elif (anchor := anchored.pop(row.seq, None)) and actual.hex() != anchor.row_hash:
            fault = (row.seq, f"row hash differs from the {anchor.source}")
        if fault is not None:
            break
        previous = actual
        expected += 1
    return expected, previous, fault


def verify_chain(
    rows: Iterable[AuditRow],
    *,
    from_seq: int = 1,
    prev_hash: bytes = GENESIS_HASH,
    to_seq: int | None = None,
    anchors: Iterable[Anchor] = (),
) -> VerifyResult:
    """Check rows given in seq order, starting at ``from_seq`` whose predecessor's hash is
    ``prev_hash``. Each row must have the next seq, link to the previous row's hash, and hash
    to what it stores. Each anchor (the S3 anchor, the database's own head) in the checked
    range must match the row at its seq, and a chain checked to its end (``to_seq`` None) must
    reach every anchor's seq: a deleted tail is found. ``rows`` is closed (when it can be) once
    checked, also when a bad row stops the check early.
    """
    upper = to_seq if to_seq is not None else float("inf")
    anchored = {a.seq: a for a in anchors if from_seq <= a.seq <= upper}
    expected = from_seq
    previous = bytes(prev_hash)
    fault: tuple[int, str] | None = None
    try:
        expected, previous, fault = _walk(rows, expected, previous, anchored)
    finally:
        # a stream stopped at a bad row holds its connection (a COPY in progress) until closed
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    if fault is None and anchored:
        anchor = anchored[max(anchored)]
        fault = (
            expected,
            f"the chain ends at seq {expected - 1} but the {anchor.source} of "
            f"{anchor.at.isoformat()} attests seq {anchor.seq}: rows were removed",
        )
    checked = expected - from_seq
    return VerifyResult(
        ok=fault is None,
        checked=checked,
        first_bad_seq=fault[0] if fault else None,
        reason=fault[1] if fault else None,
        last_seq=expected - 1 if checked else None,
        last_hash=previous.hex() if checked else None,
    )


# ---- verification in seq ranges ----------------------------------------------------------


@dataclass(frozen=True)
class RangeCheck:
    """One contiguous part of a chain to verify on its own: rows ``from_seq``..``to_seq``
    (``to_seq`` None: to the chain's end), starting from ``prev_hash``, or (None) from the
    stored hash of the row before it, read directly where the range's rows are read."""

    from_seq: int
    to_seq: int | None
    prev_hash: bytes | None
    anchors: tuple[Anchor, ...] = ()


def plan_ranges(
    from_seq: int, last_seq: int, to_seq: int | None, *, parts: int, min_rows: int
) -> list[tuple[int, int | None]]:
    """Split rows ``from_seq``..``last_seq`` (the chain's last stored seq within the check)
    into at most ``parts`` contiguous ranges of at least ``min_rows`` rows each. The last range
    ends at ``to_seq`` (None: wherever the chain ends), so rows past ``last_seq`` are still
    checked and a deleted tail is still held against the anchors."""
    rows = last_seq - from_seq + 1
    count = max(1, min(parts, rows // max(min_rows, 1)))
    bounds = [from_seq + rows * i // count for i in range(count + 1)]
    ranges: list[tuple[int, int | None]] = [
        (bounds[i], bounds[i + 1] - 1) for i in range(count - 1)
    ]
    ranges.append((bounds[count - 1], to_seq))
    return ranges


def join_ranges(
    checks: Iterable[RangeCheck], results: Iterable[VerifyResult | None]
) -> VerifyResult:
    """One result for a chain verified in ``checks`` (in seq order), from each range's result
    (None: the row before the range is missing, so it could not start). Ranges join where
    each one's first row links to the stored hash of the row before it, which the previous
    range checked as its last row: so every range but the last must have checked every one of
    its rows. The first fault in seq order is the chain's."""
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    for check, result in zip(checks, results, strict=True):
        first_seq = check.from_seq if first_seq is None else first_seq
        fault: tuple[int, str] | None = None
        if result is None:
            fault = (check.from_seq - 1, f"row {check.from_seq - 1} is missing")
        elif not result.ok:
            fault = (result.first_bad_seq or check.from_seq, result.reason or "row does not verify")
        elif check.to_seq is not None and result.last_seq != check.to_seq:
            missing = (result.last_seq or check.from_seq - 1) + 1
            fault = (missing, f"row {missing} is missing (the chain is checked up to it)")
        if fault is not None:
            if result is not None and result.checked and fault[0] > check.from_seq:
                last_seq, last_hash = result.last_seq, result.last_hash
            if last_seq is not None and last_seq >= fault[0]:
                last_seq, last_hash = None, None  # the missing row was the previous range's
            checked = fault[0] - first_seq
            return VerifyResult(
                ok=False,
                checked=checked,
                first_bad_seq=fault[0],
                reason=fault[1],
                last_seq=last_seq if checked else None,
                last_hash=last_hash if checked else None,
            )
        if result is not None and result.checked:
            last_seq, last_hash = result.last_seq, result.last_hash
    if first_seq is None:
        raise ValueError("no ranges to join")
    checked = 0 if last_seq is None else last_seq - first_seq + 1
    return VerifyResult(ok=True, checked=checked, last_seq=last_seq, last_hash=last_hash)
