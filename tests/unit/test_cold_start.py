"""Handler modules import with no configuration at all: settings are read per cold start, in
the handler, never at import time; no non-chat handler pulls in the LLM client; and every
entry module imports with the cyclic collector paused (lambdas.shared.coldstart)."""

from __future__ import annotations

import functools
import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdas.shared.coldstart import collector_paused
from lambdas.shared.routes import GROUPS

ROOT = Path(__file__).resolve().parents[2]
NON_CHAT_GROUPS = [group for group in GROUPS if group != "chat"]
ENTRY_MODULES = [
    *(f"lambdas.{group}.handler" for group in NON_CHAT_GROUPS),
    "lambdas.jobs.handler",
    "lambdas.migrations.handler",
    "lambdas.outbox.handler",
    "lambdas.activity.consumer",
]
# What only a write needs: the audit chain's hashing (RFC 8785) and the event catalog's models.
# The audit group verifies chains and the jobs function anchors them: they need it to serve.
WRITE_ONLY_MODULES = ("rfc8785", "lambdas.shared.audit", "lambdas.shared.events")
LOADS_THE_CHAIN_TO_SERVE = {"lambdas.audit.handler", "lambdas.jobs.handler"}
YOUNG_COLLECTIONS_AFTER_THE_IMPORTS = 5
# Imports ``module`` and prints what a cold start leaves behind, as JSON.
IMPORT_PROBE = """
import gc, json, sys
before = [s["collections"] for s in gc.get_stats()]
import {module}
print(json.dumps({{
    "before": before,
    "after": [s["collections"] for s in gc.get_stats()],
    "enabled": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "loaded": sorted(name for name in ("openai", "psycopg") if name in sys.modules),
    "write_only": sorted(name for name in {write_only!r} if name in sys.modules),
}}))
"""


@functools.cache
def _import_in_a_fresh_interpreter(module: str) -> dict[str, Any]:
    """Import ``module`` the way a cold start does: a new interpreter with the collector on and
    no configuration in the environment. One interpreter per module for the run: the probe
    reports everything the tests below read, and a fresh interpreter reports the same."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE.format(module=module, write_only=WRITE_ONLY_MODULES)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen: dict[str, Any] = json.loads(result.stdout)
    return seen


@pytest.mark.parametrize("group", NON_CHAT_GROUPS)
def test_a_handler_imports_without_environment_and_without_openai(group: str) -> None:
    seen = _import_in_a_fresh_interpreter(f"lambdas.{group}.handler")

    assert seen["loaded"] == ["psycopg"]


@pytest.mark.parametrize("module", sorted(set(ENTRY_MODULES) - LOADS_THE_CHAIN_TO_SERVE))
def test_an_entry_module_leaves_what_only_a_write_needs_to_its_first_write(module: str) -> None:
    seen = _import_in_a_fresh_interpreter(module)

    assert seen["write_only"] == []


@pytest.mark.parametrize("module", ENTRY_MODULES)
def test_an_entry_module_imports_with_the_collector_paused_and_freezes_what_it_built(
    module: str,
) -> None:
    # Given a fresh interpreter with the collector on, as Lambda starts one
    # When it imports the entry module
    seen = _import_in_a_fresh_interpreter(module)

    # Then no collection of the older generations ran (unpaused, about 160 young and 16 older
    # ones do), only the few young ones of the module body after its imports; the import's
    # objects are in the permanent generation and the collector is back on for the invocations
    assert seen["after"][1:] == seen["before"][1:]
    assert seen["after"][0] - seen["before"][0] <= YOUNG_COLLECTIONS_AFTER_THE_IMPORTS
    assert seen["frozen"] > 10_000
    assert seen["enabled"] is True


@pytest.fixture
def restored_collector() -> Iterator[None]:
    was_enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("restored_collector")
def test_the_collector_is_off_inside_and_on_again_after() -> None:
    gc.enable()

    with collector_paused():
        inside = gc.isenabled()
        allocated = [[index] for index in range(1000)]

    assert inside is False
    assert gc.isenabled() is True
    assert gc.get_freeze_count() >= len(allocated)


@pytest.mark.usefixtures("restored_collector")
def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()

    with collector_paused():
        pass

    assert gc.isenabled() is False


@pytest.mark.usefixtures("restored_collector")
def test_a_failed_import_still_turns_the_collector_back_on() -> None:
    gc.enable()

    with pytest.raises(ModuleNotFoundError), collector_paused():
        import lambdas.no_such_module  # type: ignore[import-not-found]  # noqa: F401, PLC0415

    assert gc.isenabled() is True
