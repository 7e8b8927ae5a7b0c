"""Tiny Lambda handlers for the execution-environment pool's tests (run in worker processes)."""

from __future__ import annotations

import os
import time
from typing import Any


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """What this environment is: its process, its variables, its context."""
    time.sleep(float(event.get("sleep_s", 0)))
    if event.get("exit"):
        os._exit(3)
    if event.get("raise"):
        raise RuntimeError("secret internals")
    return {
        "pid": os.getpid(),
        "marker": os.environ.get("POOL_TEST_MARKER"),
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
