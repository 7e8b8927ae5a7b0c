"""The migration Lambda's handler, invoked as the CDK Provider framework and operators do."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import psycopg
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.migrations.handler import PHYSICAL_RESOURCE_ID, MigrationDeployFailed, lambda_handler
from lambdas.migrations.locks import ADVISORY_LOCK_KEY
from lambdas.shared.migration_files import MIGRATIONS_DIR, discover
from lambdas.shared.runtime import get_runtime
from scripts.devstack.aws_resources import LocalResources, aurora_secret, provision
from scripts.devstack.gateway import LambdaContextStub
from scripts.devstack.stack import custom_resource_event, reset_lambda_caches
from tests.support.database import RUNTIME_ROLE, TestDatabase

BUNDLED = discover(MIGRATIONS_DIR)


def _context() -> LambdaContext:
    return cast(
        "LambdaContext",
        LambdaContextStub(
            function_name="alquimista-dev-migrations", deadline_ms=time.time() * 1000 + 900_000
        ),
    )


def _invoke(event: dict[str, Any]) -> dict[str, Any]:
    return lambda_handler(event, _context())


@pytest.fixture
def fresh_env(
    aws: None, empty_db: TestDatabase, monkeypatch: pytest.MonkeyPatch, runtime_password: str
) -> Iterator[LocalResources]:
    """The Lambda environment pointing at an empty database."""
    resources = provision(
        "dev", empty_db.server, dbname=empty_db.name, runtime_password=runtime_password
    )
    for name, value in resources.lambda_environment("dev").items():
        monkeypatch.setenv(name, value)
    reset_lambda_caches()
    yield resources
    reset_lambda_caches()


def _bundle_copy(tmp_path: Path, *, up_to: int, extra: dict[str, str] | None = None) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    for migration in BUNDLED:
        if migration.version <= up_to:
            shutil.copy(migration.path, folder / migration.filename)
    for name, sql in (extra or {}).items():
        (folder / name).write_text(sql)
    return folder


def _use_bundle(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setenv("MIGRATIONS_DIR", str(folder))
    reset_lambda_caches()


def test_create_applies_every_file_and_the_runtime_role_can_log_in(fresh_env, empty_db) -> None:
    response = _invoke(custom_resource_event("Create", {"MigrationsHash": "abc"}))

    assert response["PhysicalResourceId"] == PHYSICAL_RESOURCE_ID
    assert response["Data"]["Applied"] == len(BUNDLED)
    assert response["Data"]["LatestVersion"] == str(BUNDLED[-1].version)
    secret = json.loads(
        boto3.client("secretsmanager").get_secret_value(SecretId=fresh_env.runtime_secret_arn)[
            "SecretString"
        ]
    )
    url = psycopg.conninfo.make_conninfo(
        empty_db.owner_url, user=secret["username"], password=secret["password"]
    )
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM public.migrations").fetchone() == (len(BUNDLED),)
    assert secret["username"] == RUNTIME_ROLE


def test_update_on_a_current_schema_applies_nothing(lambda_env) -> None:
    event = custom_resource_event("Update", {"MigrationsHash": "new"})
    event["OldResourceProperties"] = {"MigrationsHash": "old"}

    response = _invoke(event)

    assert response["PhysicalResourceId"] == PHYSICAL_RESOURCE_ID
    assert response["Data"]["Applied"] == 0


def test_delete_keeps_the_schema_and_the_physical_id(lambda_env, db) -> None:
    event = custom_resource_event("Delete", {"MigrationsHash": "abc"})
    event["PhysicalResourceId"] = "alquimista-schema-previous"

    response = _invoke(event)

    assert response == {"PhysicalResourceId": "alquimista-schema-previous"}
    with db.owner() as conn:
        row = conn.execute("SELECT count(*) AS n FROM public.migrations").fetchone()
    assert row["n"] == len(BUNDLED)


def test_a_rollback_update_with_old_code_succeeds_with_the_database_ahead(
    lambda_env, monkeypatch, tmp_path
) -> None:
    # Given the stack rolls back: old code, carrying fewer files, gets the old properties
    old_bundle = _bundle_copy(tmp_path, up_to=BUNDLED[-3].version)
    _use_bundle(monkeypatch, old_bundle)
    event = custom_resource_event("Update", {"MigrationsHash": "old"})
    event["OldResourceProperties"] = {"MigrationsHash": "new"}

    response = _invoke(event)

    assert response["PhysicalResourceId"] == PHYSICAL_RESOURCE_ID
    assert response["Data"]["Applied"] == 0
    assert response["Data"]["Ahead"] == ",".join(m.filename for m in BUNDLED[-2:])


def test_a_failing_file_fails_the_deploy_naming_the_file_and_the_error(
    fresh_env, monkeypatch, tmp_path
) -> None:
    bundle = _bundle_copy(
        tmp_path, up_to=BUNDLED[-1].version, extra={"900_broken.sql": "SELECT * FROM nowhere;"}
    )
    _use_bundle(monkeypatch, bundle)

    with pytest.raises(MigrationDeployFailed) as failure:
        _invoke(custom_resource_event("Create", {"MigrationsHash": "abc"}))

    assert "900_broken.sql" in str(failure.value)
    assert 'relation "nowhere" does not exist' in str(failure.value)


def test_direct_invocations_return_json_reports(fresh_env, monkeypatch, tmp_path) -> None:
    plan = _invoke({"action": "plan"})
    applied = _invoke({"action": "apply"})
    status = _invoke({"action": "status"})

    assert plan["ok"] is True
    assert plan["pending"] == [m.filename for m in BUNDLED]
    assert [item["file"] for item in applied["applied"]] == [m.filename for m in BUNDLED]
    assert status["pending"] == []
    assert [entry["version"] for entry in status["ledger"]] == [m.version for m in BUNDLED]
    json.dumps(status)  # the report is plain JSON


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"action": "drop-everything"}, "unknown action"),
        ({"action": "baseline"}, 'needs an integer "version"'),
    ],
)
def test_bad_direct_invocations_are_reported_not_run(lambda_env, event, message) -> None:
    report = _invoke(event)

    assert report["ok"] is False
    assert message in report["error"]


def test_baseline_by_direct_invocation_records_without_running(fresh_env, empty_db) -> None:
    report = _invoke({"action": "baseline", "version": 2})

    assert report["ok"] is True
    assert [item["version"] for item in report["applied"]] == [1, 2]
    with empty_db.owner() as conn:
        row = conn.execute(
            "SELECT to_regclass('alquimista_platform.tenants') IS NULL AS absent"
        ).fetchone()
    assert row["absent"] is True


def test_a_run_holding_the_database_lock_is_respected_and_named(
    fresh_env, empty_db, monkeypatch
) -> None:
    # Given another run (an operator's laptop) holds the advisory lock on this database
    monkeypatch.setenv("MIGRATION_LOCK_WAIT_S", "0")
    reset_lambda_caches()
    other = psycopg.conninfo.make_conninfo(
        empty_db.owner_url, application_name="alquimista-migrations:operator@laptop"
    )
    with psycopg.connect(other, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))

        report = _invoke({"action": "apply"})

    assert report["ok"] is False
    assert "operator@laptop" in report["error"]
    assert report["applied"] == []


def test_a_run_that_died_holding_the_lock_blocks_nothing(fresh_env, empty_db) -> None:
    # Given a run whose session ended while it held the lock (a killed Lambda)
    with psycopg.connect(empty_db.owner_url, autocommit=True) as crashed:
        crashed.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))

    report = _invoke({"action": "apply"})

    assert report["ok"] is True, report["error"]


def test_a_rotated_master_password_is_fetched_again(fresh_env, empty_db, monkeypatch) -> None:
    # Given a warm environment that cached a secret whose password is no longer valid
    sm = boto3.client("secretsmanager")
    good = sm.get_secret_value(SecretId=fresh_env.db_secret_arn)["SecretString"]
    stale = aurora_secret(
        empty_db.server, username=empty_db.server.user, password="stale", dbname=empty_db.name
    )
    sm.put_secret_value(SecretId=fresh_env.db_secret_arn, SecretString=json.dumps(stale))
    monkeypatch.setenv("MIGRATION_CONNECT_RETRY_S", "0")
    reset_lambda_caches()
    assert _invoke({"action": "status"})["ok"] is False
    # When the secret is rotated, while the environment still caches the stale value
    sm.put_secret_value(SecretId=fresh_env.db_secret_arn, SecretString=good)
    monkeypatch.setenv("MIGRATION_CONNECT_RETRY_S", "5")
    del get_runtime().migration_settings  # the secret cache stays warm

    report = _invoke({"action": "status"})

    assert report["ok"] is True, report["error"]
