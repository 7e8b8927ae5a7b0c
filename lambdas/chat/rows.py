"""A statement that must return a row (an INSERT ... RETURNING, an aggregate)."""

from __future__ import annotations

from typing import Any


def one(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        raise LookupError("the statement returned no row")
    return row
