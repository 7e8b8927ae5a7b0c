"""`make dev` keeps the suppression-list HMAC key in its state folder: moto forgets its secrets
when the stack stops, and a new key made every digest already in the database (blocklist,
consent IP HMACs) stop matching, so an erased and suppressed person could be created again
after a restart."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import boto3

from lambdas.shared.constants import resource_names
from scripts.devstack.aws_resources import (
    SUPPRESSION_KEY_FILE,
    load_or_create_suppression_key,
    provision,
)
from tests.support.database import TestDatabase


def _secret_key() -> str:
    client = boto3.client("secretsmanager")
    value = client.get_secret_value(SecretId=resource_names("dev").leads_suppression_secret)
    key: str = json.loads(value["SecretString"])["hmac_key"]
    return key


def _forget_secrets() -> None:
    """What a moto restart does to the suppression secret."""
    boto3.client("secretsmanager").delete_secret(
        SecretId=resource_names("dev").leads_suppression_secret, ForceDeleteWithoutRecovery=True
    )


def test_the_key_is_created_once_private_and_then_reused(tmp_path: Path) -> None:
    state = tmp_path / "state"

    key = load_or_create_suppression_key(state)

    assert len(key) == 64
    int(key, 16)
    assert stat.S_IMODE((state / SUPPRESSION_KEY_FILE).stat().st_mode) == 0o600
    assert load_or_create_suppression_key(state) == key
    assert load_or_create_suppression_key(tmp_path / "other") != key


def test_the_suppression_secret_survives_a_restart_of_the_aws_endpoint(
    aws: None, db: TestDatabase, runtime_password: str, tmp_path: Path
) -> None:
    key = load_or_create_suppression_key(tmp_path)
    provision(
        "dev", db.server, dbname=db.name, runtime_password=runtime_password, suppression_key=key
    )
    assert _secret_key() == key

    _forget_secrets()
    provision(
        "dev",
        db.server,
        dbname=db.name,
        runtime_password=runtime_password,
        suppression_key=load_or_create_suppression_key(tmp_path),
    )

    assert _secret_key() == key


def test_without_a_kept_key_a_restart_draws_a_new_one(
    aws: None, db: TestDatabase, runtime_password: str
) -> None:
    provision("dev", db.server, dbname=db.name, runtime_password=runtime_password)
    first = _secret_key()
    provision("dev", db.server, dbname=db.name, runtime_password=runtime_password)
    assert _secret_key() == first  # kept while the endpoint keeps the secret

    _forget_secrets()
    provision("dev", db.server, dbname=db.name, runtime_password=runtime_password)

    assert _secret_key() != first
