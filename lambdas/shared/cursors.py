"""The opaque cursors of paginated routes: one codec, so no route can crash on a cursor it
never issued (any string a client sends is either a cursor this API returned or a 422)."""

from __future__ import annotations

import base64
from collections.abc import Callable

from lambdas.shared.errors import ValidationFailed


class InvalidCursor(ValidationFailed):
    code = "invalid_cursor"


def encode_cursor(position: str) -> str:
    """The opaque form of a position in a listing (URL-safe base64, no padding)."""
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, valid: Callable[[str], bool]) -> str:
    """The position ``cursor`` encodes, if ``valid`` accepts it; else InvalidCursor (422)."""
    try:
        position = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:  # binascii.Error, UnicodeDecodeError and non-ASCII input alike
        position = ""
    if not position or not position.isprintable() or not valid(position):
        raise InvalidCursor(
            "cursor is not one this API returned",
            details=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}],
        )
    return position
