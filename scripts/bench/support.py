"""What the database benchmarks share: a PostgreSQL server to measure on, scratch databases
(empty or migrated, dropped afterwards), the machine's description and the update of their
section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from lambdas.migrations.roles import RuntimeRole
from lambdas.migrations.runner import MigrationRunner
from scripts.devstack.postgres import ConnectionInfo, EmbeddedPostgres, free_port


def machine_description() -> str:
    return f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()}"


@contextmanager
def benchmark_server(url: str | None = None) -> Iterator[ConnectionInfo]:
    """The server at ``url`` (a superuser's), or an embedded PostgreSQL in a temporary folder,
    destroyed afterwards."""
    if url:
        params = psycopg.conninfo.conninfo_to_dict(url)
        yield ConnectionInfo(
            str(params.get("host", "127.0.0.1")),
            int(str(params.get("port") or 5432)),
            str(params.get("user", "postgres")),
            str(params.get("password", "")),
        )
        return
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        server = EmbeddedPostgres(Path(tmp), port=free_port())
        server.start()
        try:
            yield server.connection
        finally:
            server.destroy()


@contextmanager
def scratch_database(
    server: ConnectionInfo, *, runtime_role: RuntimeRole | None = None
) -> Iterator[str]:
    """A new database's name, dropped afterwards. With ``runtime_role`` it is migrated first,
    as a deploy does (that role created or updated with it)."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        if runtime_role is not None:
            report = MigrationRunner(server.url(name), runtime_role=runtime_role).apply()
            if not report.ok:
                raise SystemExit(f"could not migrate: {report.error}")
        yield name
    finally:
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# In a section, what follows this line is prose that ``--write`` keeps: the analysis of the
# runs, which no script can regenerate.
KEPT_BELOW = "<!-- the table above is generated; the notes below are kept by --write -->"


def write_section(path: Path, section: str) -> None:
    """Replace the section of ``path`` that starts with ``section``'s own title (its first
    line, a ``## `` heading) up to the next one, or append it. When the section in ``path``
    holds the ``KEPT_BELOW`` line, only what is above it is replaced: ``section`` up to its own
    ``KEPT_BELOW`` line (or all of it), then the line and the notes that follow it, kept."""
    title = section.split("\n", 1)[0]
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(title)
    if start < 0:
        path.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = text.find("\n## ", start + len(title))
    end = len(text) if end < 0 else end
    marker = text.find(KEPT_BELOW, start, end)
    if marker < 0:
        replaced = section
    else:
        if KEPT_BELOW in section:
            generated = section.split(KEPT_BELOW, 1)[0]
        else:
            generated = section.rstrip("\n") + "\n\n"
        replaced = generated + text[marker:end]
    path.write_text(text[:start] + replaced + text[end:])
