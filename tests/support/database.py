"""Test databases: one embedded PostgreSQL per run, a template migrated once, a clone per test."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from lambdas.migrations.roles import RuntimeRole
from lambdas.migrations.runner import MigrationRunner
from lambdas.shared.constants import resource_names
from lambdas.shared.db import Database
from lambdas.shared.secrets import DbCredentials
from scripts.devstack.postgres import ConnectionInfo

TEMPLATE_DB = "alquimista_template"
RUNTIME_ROLE = resource_names("dev").runtime_db_role


@dataclass(frozen=True)
class TestDatabase:
    """One test's own database, with the owner's and the runtime role's credentials."""

    __test__ = False

    server: ConnectionInfo
    name: str
    runtime_password: str

    @property
    def owner_url(self) -> str:
        return self.server.url(self.name)

    @property
    def runtime_url(self) -> str:
        return psycopg.conninfo.make_conninfo(
            self.server.url(self.name), user=RUNTIME_ROLE, password=self.runtime_password
        )

    @contextmanager
    def owner(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        with psycopg.connect(self.owner_url, row_factory=dict_row, autocommit=True) as conn:
            yield conn

    @contextmanager
    def runtime(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        with psycopg.connect(self.runtime_url, row_factory=dict_row) as conn:
            yield conn

    def lambda_database(self, application_name: str = "test") -> Database:
        """The Lambdas' database handle on this database, as the runtime role (RLS applies),
        as an execution environment holds one; the caller closes it."""
        creds = DbCredentials(
            host=self.server.host,
            port=self.server.port,
            dbname=self.name,
            username=RUNTIME_ROLE,
            password=self.runtime_password,
        )
        return Database(
            lambda _force: creds, connect_timeout_s=5, application_name=application_name
        )


def build_template(server: ConnectionInfo, runtime_password: str) -> None:
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    runner = MigrationRunner(
        server.url(TEMPLATE_DB), runtime_role=RuntimeRole(RUNTIME_ROLE, runtime_password)
    )
    report = runner.apply()
    if not report.ok:
        raise RuntimeError(f"could not migrate the template database: {report.error}")


def derive_template(
    server: ConnectionInfo,
    name: str,
    *,
    source: str,
    prepare: Callable[[str], None],
) -> None:
    """A second template: a copy of ``source`` that ``prepare`` (given the owner's URL) has
    filled, so what every test of a tier needs is done once per run, not once per test."""
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    prepare(server.url(name))


def new_runtime_password() -> str:
    return secrets.token_urlsafe(18)


@contextmanager
def cloned_database(
    server: ConnectionInfo, runtime_password: str, *, template: str | None = TEMPLATE_DB
) -> Iterator[TestDatabase]:
    """A database of its own for one test: a clone of the migrated template, or, with
    ``template=None``, an empty one (for the migration runner's own tests)."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    source = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{source}')
    try:
        yield TestDatabase(server, name, runtime_password)
    finally:
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
