"""Create, on a moto server or under ``mock_aws``, the AWS resources the stacks create, with the
same names and the same secret shapes. Idempotent: existing resources are updated in place."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import boto3

from lambdas.shared.constants import resource_names
from scripts.devstack.events import provision_events
from scripts.devstack.postgres import ConnectionInfo


@dataclass(frozen=True)
class LocalResources:
    db_secret_arn: str
    runtime_secret_arn: str
    webhook_secret_arn: str
    locks_table: str
    idempotency_table: str
    activity_table: str = ""
    event_bus: str = ""

    def lambda_environment(self, env: str) -> dict[str, str]:
        """The environment variables the stacks give the Lambdas, pointing at these resources."""
        return {
            "APP_ENV": env,
            "DB_SECRET_ARN": self.runtime_secret_arn,
            "MASTER_SECRET_ARN": self.db_secret_arn,
            "RUNTIME_SECRET_ARN": self.runtime_secret_arn,
            "WEBHOOK_SECRET_ARN": self.webhook_secret_arn,
            "LOCKS_TABLE_NAME": self.locks_table,
            "IDEMPOTENCY_TABLE_NAME": self.idempotency_table,
            "ACTIVITY_TABLE_NAME": self.activity_table,
            "EVENT_BUS_NAME": self.event_bus,
        }


def aurora_secret(
    info: ConnectionInfo, *, username: str, password: str, dbname: str
) -> dict[str, Any]:
    """The JSON Aurora writes into a generated cluster secret."""
    return {
        "dbClusterIdentifier": "alquimista-local",
        "engine": "postgres",
        "host": info.host,
        "port": info.port,
        "dbname": dbname,
        "username": username,
        "password": password,
    }


def _put_secret(client: Any, name: str, value: dict[str, Any]) -> str:
    payload = json.dumps(value)
    try:
        arn: str = client.create_secret(Name=name, SecretString=payload)["ARN"]
    except client.exceptions.ResourceExistsException:
        arn = client.put_secret_value(SecretId=name, SecretString=payload)["ARN"]
    return arn


def _existing_secret(client: Any, name: str) -> dict[str, Any] | None:
    try:
        value: dict[str, Any] = json.loads(client.get_secret_value(SecretId=name)["SecretString"])
    except client.exceptions.ResourceNotFoundException:
        return None
    return value


def _ensure_table(client: Any, name: str, key: str, ttl_attribute: str) -> None:
    try:
        client.create_table(
            TableName=name,
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except client.exceptions.ResourceInUseException:
        return
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute}
    )


def provision(
    env: str, server: ConnectionInfo, *, dbname: str, runtime_password: str | None = None
) -> LocalResources:
    """Secrets and tables for ``env``, backed by the PostgreSQL server at ``server``.

    The runtime role's password is kept across runs unless ``runtime_password`` is given.
    """
    names = resource_names(env)
    sm = boto3.client("secretsmanager")
    db_arn = _put_secret(
        sm,
        names.db_secret,
        aurora_secret(server, username=server.user, password=server.password, dbname=dbname),
    )
    previous = _existing_secret(sm, names.runtime_db_secret)
    runtime_password = (
        runtime_password or (previous or {}).get("password") or secrets.token_urlsafe(24)
    )
    runtime_arn = _put_secret(
        sm,
        names.runtime_db_secret,
        aurora_secret(
            server, username=names.runtime_db_role, password=runtime_password, dbname=dbname
        ),
    )
    previous_webhook = _existing_secret(sm, names.webhook_secret)
    webhook_arn = _put_secret(
        sm,
        names.webhook_secret,
        previous_webhook or {"signing_secret": secrets.token_urlsafe(32)},
    )
    ddb = boto3.client("dynamodb")
    _ensure_table(ddb, names.locks_table, "lock_id", "expires_at")
    _ensure_table(ddb, names.idempotency_table, "id", "expiration")
    provision_events(names)
    return LocalResources(
        db_secret_arn=db_arn,
        runtime_secret_arn=runtime_arn,
        webhook_secret_arn=webhook_arn,
        locks_table=names.locks_table,
        idempotency_table=names.idempotency_table,
        activity_table=names.activity_table,
        event_bus=names.event_bus,
    )
