from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from scripts.devstack.aws_resources import LocalResources
from tests.support.database import TestDatabase
from tests.support.factories import TestTenant, create_catalog, create_tenant


@pytest.fixture
def owner(db: TestDatabase) -> Iterator[psycopg.Connection[Any]]:
    with db.owner() as conn:
        yield conn


@dataclass(frozen=True)
class World:
    """Two tenants on the dev catalog: ``a`` on Professional, ``b`` on Starter."""

    a: TestTenant
    b: TestTenant


@pytest.fixture
def world(lambda_env: LocalResources, owner: psycopg.Connection[Any]) -> World:
    create_catalog(owner)
    return World(
        a=create_tenant(owner, plan="professional"), b=create_tenant(owner, plan="starter")
    )


@pytest.fixture
def owner_conn(db: TestDatabase) -> Iterator[psycopg.Connection[Any]]:
    """The owner with row security off: sees and changes every tenant's rows (fault injection)."""
    with db.owner() as conn:
        conn.execute("SET row_security = off")
        yield conn
