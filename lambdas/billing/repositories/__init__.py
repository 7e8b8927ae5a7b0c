"""Billing's SQL, one module per sub-domain; ``lambdas.billing.repository.BillingUnitOfWork``
composes them."""

from __future__ import annotations

from typing import Any


def one(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        raise LookupError("the statement returned no row")
    return row
