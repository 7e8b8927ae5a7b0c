"""Where `make dev` keeps its state and listens, for the scripts that reach it afterwards.

Every script reads the same variables as ``scripts/dev.py``: DEV_STATE_DIR, DEV_PG_PORT and
DEV_API_PORT.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from scripts.devstack.postgres import EmbeddedPostgres, port_is_open

ROOT: Final = Path(__file__).resolve().parents[2]
DEV_DB: Final = "alquimista"
NOT_RUNNING: Final = "the local database is not running: start `make dev` first"


class DevStackNotRunning(Exception):
    """The `make dev` database is not there or not up."""


def state_dir() -> Path:
    return Path(os.environ.get("DEV_STATE_DIR") or ROOT / ".local")


def pg_port() -> int:
    return int(os.environ.get("DEV_PG_PORT") or "54329")


def api_port() -> int:
    return int(os.environ.get("DEV_API_PORT") or "8000")


def embedded_server(port: int | None = None) -> EmbeddedPostgres:
    return EmbeddedPostgres(state_dir() / "postgres", port=port or pg_port())


def running_database_url(port: int | None = None, dbname: str = DEV_DB) -> str:
    """The `make dev` database's URL, or ``DevStackNotRunning`` with one line to show."""
    server = embedded_server(port)
    if not server.is_initialised() or not port_is_open(server.host, server.port):
        raise DevStackNotRunning(NOT_RUNNING)
    return server.connection.url(dbname)
