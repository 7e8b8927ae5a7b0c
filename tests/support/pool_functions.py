"""Tiny Lambda handlers for the execution-environment pool's tests (run in worker processes)."""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg

# errors a handler meets when the database goes away mid-invocation, and one it may cause itself
DATABASE_ERRORS = {
    "shutdown": psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    "broken": psycopg.OperationalError("consuming input failed: server closed the connection"),
    "cancelled": psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
}


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """What this environment is: its process, its variables, its context."""
    time.sleep(float(event.get("sleep_s", 0)))
    if event.get("exit"):
        os._exit(3)
    if event.get("raise"):
        raise RuntimeError("secret internals")
    if "database_error" in event:
        raise DATABASE_ERRORS[event["database_error"]]
    return {
        "pid": os.getpid(),
        "marker": os.environ.get("POOL_TEST_MARKER"),
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
