"""Idempotent dev seed data. Filled in as the schema grows (tenants, users, catalog)."""

from __future__ import annotations


def seed_dev_data(conninfo: str) -> None:
    """Insert the dev tenants, users and catalog; running it twice changes nothing."""
    del conninfo
