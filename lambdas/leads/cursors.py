"""Opaque cursors (pure): keyset positions encoded for clients, refused when tampered with."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from uuid import UUID

from lambdas.shared.errors import BadRequest


def _encode(payload: list[str | int]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> list[object]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest("the cursor is not valid") from error
    if not isinstance(value, list):
        raise BadRequest("the cursor is not valid")
    return value


def encode_feed_cursor(txid: int, seq: int, watermark: tuple[int, int] = (0, 0)) -> str:
    """A feed position, with the purge watermark in force when it was issued."""
    return _encode(["f", txid, seq, *watermark])


def decode_feed_cursor(cursor: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """((txid, seq), watermark) of a changes-feed cursor."""
    value = _decode(cursor)
    if len(value) != 5 or value[0] != "f":
        raise BadRequest("the cursor is not valid")
    numbers = value[1:]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
        raise BadRequest("the cursor is not valid")
    txid, seq, wm_txid, wm_seq = (int(str(n)) for n in numbers)
    return (txid, seq), (wm_txid, wm_seq)


def encode_list_cursor(created_at: datetime, row_id: UUID) -> str:
    return _encode(["l", created_at.isoformat(), str(row_id)])


def decode_list_cursor(cursor: str) -> tuple[datetime, UUID]:
    """(created_at, id) of the last row of the previous list page."""
    value = _decode(cursor)
    if len(value) != 3 or value[0] != "l" or not all(isinstance(v, str) for v in value[1:]):
        raise BadRequest("the cursor is not valid")
    try:
        created_at = datetime.fromisoformat(str(value[1]))
        row_id = UUID(str(value[2]))
    except ValueError as error:
        raise BadRequest("the cursor is not valid") from error
    if created_at.tzinfo is None:
        raise BadRequest("the cursor is not valid")
    return created_at, row_id
