"""The composition root of the API and jobs functions: built once per execution environment,
forgotten as a whole by ``reset_lambda_caches``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lambdas.shared.runtime import get_runtime
from scripts.devstack.stack import reset_lambda_caches

ROOT = Path(__file__).resolve().parents[2]


def test_the_runtime_is_built_once_and_reused(lambda_env) -> None:
    runtime = get_runtime()

    assert get_runtime() is runtime
    assert runtime.database is runtime.database
    assert runtime.api_settings is runtime.api_settings


def test_a_reset_closes_the_connection_and_reads_the_environment_again(
    lambda_env, monkeypatch
) -> None:
    runtime = get_runtime()
    conn = runtime.database.connection()
    monkeypatch.setenv("DB_APPLICATION_NAME", "after-reset")

    reset_lambda_caches()

    assert conn.closed
    fresh = get_runtime()
    assert fresh is not runtime
    assert fresh.api_settings.db_application_name == "after-reset"


def test_the_jobs_function_does_not_load_the_http_layer() -> None:
    probe = "import sys, lambdas.jobs.handler; print('lambdas.shared.http' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
