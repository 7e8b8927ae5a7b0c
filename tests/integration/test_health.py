from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from lambdas.health.handler import lambda_handler
from lambdas.shared.constants import SERVICE_NAME
from lambdas.shared.runtime import get_runtime
from scripts.devstack.aws_resources import LocalResources, aurora_secret
from scripts.devstack.postgres import ConnectionInfo, free_port
from tests.support.events import http_event, lambda_context


def _get_health() -> tuple[int, dict[str, Any]]:
    response = lambda_handler(http_event("GET", "/health"), lambda_context("health"))
    return response["statusCode"], json.loads(response["body"])


def test_health_is_200_when_the_schema_is_current(lambda_env: LocalResources) -> None:
    status, body = _get_health()

    assert status == 200
    assert body["ok"] is True
    assert body["service"] == SERVICE_NAME
    assert body["environment"] == "dev"
    assert body["db_status"] == "connected"
    assert body["migrations"]["pending"] == 0
    assert body["migrations"]["applied"] >= 1


def test_health_is_503_when_a_bundled_migration_is_not_applied(lambda_env, db) -> None:
    # Given the ledger lost its newest entry (a file the bundle carries is not applied)
    with db.owner() as conn:
        conn.execute(
            """
            DELETE FROM public.migrations
            WHERE version = (SELECT max(version) FROM public.migrations)
            """
        )

    status, body = _get_health()

    assert status == 503
    assert body["ok"] is False
    assert body["db_status"] == "connected"
    assert body["migrations"]["pending"] == 1


def test_health_answers_503_fast_when_the_database_is_unreachable(lambda_env, db) -> None:
    # Given the secret points at a port where nothing listens
    dead = ConnectionInfo("127.0.0.1", free_port(), "nobody", "x")
    boto3.client("secretsmanager").put_secret_value(
        SecretId=lambda_env.runtime_secret_arn,
        SecretString=json.dumps(
            aurora_secret(dead, username="nobody", password="x", dbname=db.name)
        ),
    )
    started = time.monotonic()

    status, body = _get_health()

    assert status == 503
    assert body["db_status"] == "unreachable"
    assert time.monotonic() - started < 5


def test_a_broken_connection_is_replaced_on_the_next_request(lambda_env, db) -> None:
    assert _get_health()[0] == 200
    pid = get_runtime().database.connection().info.backend_pid
    # When the server drops the warm connection (failover, restart)
    with db.owner() as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    status, _ = _get_health()

    assert status == 200
    assert get_runtime().database.connection().info.backend_pid != pid


def test_a_rotated_password_is_fetched_again_after_an_authentication_failure(
    lambda_env, db, runtime_password
) -> None:
    # Given a warm environment that cached the old secret, then the password is rotated
    assert _get_health()[0] == 200
    get_runtime().database.close()
    rotated = runtime_password + "-rotated"
    with db.owner() as conn:
        conn.execute(f"ALTER ROLE alquimista_app PASSWORD '{rotated}'")
    try:
        boto3.client("secretsmanager").put_secret_value(
            SecretId=lambda_env.runtime_secret_arn,
            SecretString=json.dumps(
                aurora_secret(
                    db.server, username="alquimista_app", password=rotated, dbname=db.name
                )
            ),
        )

        status, _ = _get_health()

        assert status == 200
    finally:
        with db.owner() as conn:
            conn.execute(f"ALTER ROLE alquimista_app PASSWORD '{runtime_password}'")


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_health_refuses_other_methods_with_a_json_error(lambda_env, method) -> None:
    response = lambda_handler(http_event(method, "/health"), lambda_context("health"))

    assert response["statusCode"] in (404, 405)
    assert "error" in json.loads(response["body"])
