"""Handler modules import with no configuration at all: settings are read per cold start, in
the handler, never at import time; and no non-chat handler pulls in the LLM client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lambdas.shared.routes import GROUPS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("group", [g for g in GROUPS if g != "chat"])
def test_a_handler_imports_without_environment_and_without_openai(group: str) -> None:
    code = (
        f"import sys; import lambdas.{group}.handler; "
        "assert 'openai' not in sys.modules, 'openai imported'; "
        "assert 'psycopg' in sys.modules"
    )

    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
