"""The composition root of every function: built once per execution environment,
forgotten as a whole by ``reset_lambda_caches``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lambdas.shared import settings as settings_module
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


@pytest.mark.parametrize(
    ("settings", "variable", "field", "before", "after"),
    [
        ("api_settings", "DB_APPLICATION_NAME", "db_application_name", "one", "two"),
        ("outbox_relay_settings", "OUTBOX_BATCH_SIZE", "outbox_batch_size", 10, 20),
        ("activity_settings", "ACTIVITY_TABLE_NAME", "activity_table", "feed-a", "feed-b"),
        ("activity_consumer_settings", "ACTIVITY_TABLE_NAME", "activity_table", "feed-a", "feed-b"),
        ("migration_settings", "MIGRATION_LOCK_WAIT_S", "lock_wait_s", 1.0, 2.0),
    ],
)
def test_every_functions_settings_live_on_the_runtime_and_one_reset_forgets_them(
    lambda_env, monkeypatch, settings, variable, field, before, after
) -> None:
    # Given every variable the functions' settings require, and a warm environment
    monkeypatch.setenv("EVENT_BUS_NAME", "bus")
    monkeypatch.setenv("ACTIVITY_TABLE_NAME", "feed")
    monkeypatch.setenv("MASTER_SECRET_ARN", "master")
    monkeypatch.setenv(variable, str(before))
    reset_lambda_caches()
    assert getattr(getattr(get_runtime(), settings), field) == before
    # When the environment changes, the warm one keeps what it read, until the one reset
    monkeypatch.setenv(variable, str(after))
    assert getattr(getattr(get_runtime(), settings), field) == before

    reset_lambda_caches()

    assert getattr(getattr(get_runtime(), settings), field) == after


def test_the_settings_module_caches_nothing_of_its_own() -> None:
    cached = [
        name
        for name, value in vars(settings_module).items()
        if callable(getattr(value, "cache_clear", None))
    ]

    assert cached == [], f"{cached} would outlive reset_runtime(): put them on Runtime"
