"""The gate costs a handler nothing at cold start: a function whose routes pass the gate imports
it, but the policy engine (the matcher with its RE2 engine, the evaluator, the policy and
approval repositories) loads on the first evaluation only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the first authorize() imports; google-re2's module is ``re2``.
POLICY_ENGINE = (
    "re2",
    "lambdas.policies.detectors",
    "lambdas.policies.matcher",
    "lambdas.policies.evaluator",
    "lambdas.policies.compiled",
    "lambdas.policies.models",
    "lambdas.policies.repository",
    "lambdas.approvals.models",
    "lambdas.approvals.repository",
)
# Imports the agents handler as a cold start does, then what authorize() imports on its first
# evaluation; prints the ``lambdas`` and ``re2`` modules loaded after each step, as JSON.
PROBE = """
import json, sys

def loaded():
    return sorted(name for name in sys.modules if name.startswith(("lambdas.", "re2")))

import lambdas.agents.handler
cold = loaded()
import lambdas.policies.repository, lambdas.approvals.repository
print(json.dumps({"cold": cold, "first_evaluation": loaded()}))
"""


@pytest.fixture(scope="module")
def loaded() -> dict[str, set[str]]:
    """What a fresh interpreter with no configuration holds after each step of ``PROBE``."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {step: set(modules) for step, modules in json.loads(result.stdout).items()}


def test_the_agents_handler_imports_the_gate_but_not_the_policy_engine(
    loaded: dict[str, set[str]],
) -> None:
    cold = loaded["cold"]

    assert {"lambdas.shared.gate", "lambdas.policies.subject"} <= cold
    assert cold.isdisjoint(POLICY_ENGINE), sorted(cold & set(POLICY_ENGINE))


def test_the_first_evaluation_loads_the_policy_engine(loaded: dict[str, set[str]]) -> None:
    # The probe sees lazily imported modules: what authorize() imports brings the engine in.
    assert set(POLICY_ENGINE) <= loaded["first_evaluation"]
