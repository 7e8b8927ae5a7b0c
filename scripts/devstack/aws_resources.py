"""Create, on a moto server or under ``mock_aws``, the AWS resources the stacks create, with the
same names and the same secret shapes. Idempotent: existing resources are updated in place."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import boto3

from lambdas.shared.constants import TENANT_CLAIM, resource_names
from lambdas.shared.settings import (
    ActivitySettings,
    AuditSettings,
    BillingSettings,
    ChatSettings,
    JobSettings,
    LeadsSettings,
    MembersSettings,
    MigrationSettings,
    OutboxRelaySettings,
    environment_variables,
)
from scripts.devstack.events import provision_events
from scripts.devstack.postgres import ConnectionInfo

# The custom attribute behind the token's tenant claim (``custom:tenant_id``).
TENANT_ATTRIBUTE: Final = TENANT_CLAIM.removeprefix("custom:")

# Fixed, documented webhook signing secrets of the local stack (README, docs/api.md), so
# scripts/send_test_webhook.py and a provider's CLI can sign what the local gateway verifies.
DEV_WEBHOOK_SECRETS: Final = {
    "stripe": "whsec_alquimista_local_dev_only",
    "mercadopago": "alquimista-local-mercadopago-dev-only",
}


# The local suppression-list HMAC key, kept in the state folder next to the database: moto
# forgets its secrets when `make dev` stops, and a new key would orphan every digest the
# database holds (blocklist, consent IP HMACs, rate-limit buckets).
SUPPRESSION_KEY_FILE: Final = "dev-suppression-key"


def load_or_create_suppression_key(state_dir: Path) -> str:
    """The state folder's suppression HMAC key (64 hex digits), created on first use (0600)."""
    path = state_dir / SUPPRESSION_KEY_FILE
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key


@dataclass(frozen=True)
class LocalResources:
    db_secret_arn: str
    runtime_secret_arn: str
    webhook_secret_arns: dict[str, str]
    locks_table: str
    idempotency_table: str
    audit_anchor_bucket: str
    activity_table: str = ""
    event_bus: str = ""
    leads_suppression_secret_arn: str = ""
    leads_imports_bucket: str = ""
    outreach_sender: str = ""
    user_pool_id: str = ""
    documents_bucket: str = ""

    def lambda_environment(self, env: str) -> dict[str, str]:
        """The variables the stacks give the Lambdas (every function's, in one process),
        pointing at these resources and named, as the stacks name them, by the settings."""
        return {
            **environment_variables(
                BillingSettings,
                environment=env,
                db_secret_id=self.runtime_secret_arn,
                idempotency_table=self.idempotency_table,
                **{
                    f"{provider}_webhook_secret_id": arn
                    for provider, arn in self.webhook_secret_arns.items()
                },
            ),
            **environment_variables(JobSettings, locks_table=self.locks_table),
            **environment_variables(AuditSettings, audit_anchor_bucket=self.audit_anchor_bucket),
            **environment_variables(
                MigrationSettings,
                master_secret_id=self.db_secret_arn,
                runtime_secret_id=self.runtime_secret_arn,
            ),
            **environment_variables(ActivitySettings, activity_table=self.activity_table or None),
            **environment_variables(
                LeadsSettings,
                suppression_secret_id=self.leads_suppression_secret_arn or None,
                imports_bucket=self.leads_imports_bucket or None,
                outreach_sender=self.outreach_sender or None,
            ),
            **environment_variables(OutboxRelaySettings, event_bus_name=self.event_bus or None),
            **environment_variables(MembersSettings, user_pool_id=self.user_pool_id or None),
            **environment_variables(ChatSettings, documents_bucket=self.documents_bucket or None),
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
    env: str,
    server: ConnectionInfo,
    *,
    dbname: str,
    runtime_password: str | None = None,
    suppression_key: str | None = None,
) -> LocalResources:
    """Secrets and tables for ``env``, backed by the PostgreSQL server at ``server``.

    The runtime role's password is kept across runs unless ``runtime_password`` is given; the
    suppression HMAC key is ``suppression_key`` when given (`make dev` keeps it in its state
    folder), else the secret's while the AWS endpoint keeps it, else a new random one.
    """
    names = resource_names(env)
    sm = boto3.client("secretsmanager")
    db_arn, runtime_arn = point_database_secrets(
        env, server, dbname=dbname, runtime_password=runtime_password
    )
    webhook_arns = {
        provider: _put_secret(sm, names.webhook_secret(provider), {"webhook_secret": secret})
        for provider, secret in DEV_WEBHOOK_SECRETS.items()
    }
    # Digests already in the blocklist must still match after a restart: the key outlives moto.
    suppression = (
        {"hmac_key": suppression_key}
        if suppression_key
        else _existing_secret(sm, names.leads_suppression_secret)
        or {"hmac_key": secrets.token_hex(32)}
    )
    suppression_arn = _put_secret(sm, names.leads_suppression_secret, suppression)
    ddb = boto3.client("dynamodb")
    _ensure_table(ddb, names.locks_table, "lock_id", "expires_at")
    _ensure_table(ddb, names.idempotency_table, "id", "expiration")
    s3 = boto3.client("s3")
    _ensure_anchor_bucket(s3, names.audit_anchor_bucket)
    _ensure_bucket(s3, names.documents_bucket)
    _ensure_bucket(s3, names.leads_imports_bucket)
    # moto's SES records what outreach sends (GET /moto-api/data.json lists the messages)
    boto3.client("sesv2").create_email_identity(EmailIdentity=names.outreach_sender)
    provision_events(names)
    user_pool_id = _ensure_user_pool(boto3.client("cognito-idp"), names.user_pool)
    return LocalResources(
        db_secret_arn=db_arn,
        runtime_secret_arn=runtime_arn,
        webhook_secret_arns=webhook_arns,
        locks_table=names.locks_table,
        idempotency_table=names.idempotency_table,
        audit_anchor_bucket=names.audit_anchor_bucket,
        activity_table=names.activity_table,
        event_bus=names.event_bus,
        leads_suppression_secret_arn=suppression_arn,
        leads_imports_bucket=names.leads_imports_bucket,
        outreach_sender=names.outreach_sender,
        user_pool_id=user_pool_id,
        documents_bucket=names.documents_bucket,
    )


def point_database_secrets(
    env: str, server: ConnectionInfo, *, dbname: str, runtime_password: str | None = None
) -> tuple[str, str]:
    """The two database secrets of ``env`` (the owner's and the runtime role's) pointed at
    ``dbname`` on ``server``: what a restore to another database changes. Returns their ARNs.

    The runtime role's password is kept unless ``runtime_password`` is given."""
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
    return db_arn, runtime_arn


def _ensure_user_pool(client: Any, name: str) -> str:
    """The user pool members are invited into, shaped as stacks/identity.py makes it (e-mail
    as the username, the custom tenant attribute); found by name when it exists."""
    for pool in client.list_user_pools(MaxResults=60).get("UserPools", []):
        if pool["Name"] == name:
            return str(pool["Id"])
    created = client.create_user_pool(
        PoolName=name,
        UsernameAttributes=["email"],
        AutoVerifiedAttributes=["email"],
        Schema=[
            {"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
            {"Name": TENANT_ATTRIBUTE, "AttributeDataType": "String", "Mutable": True},
        ],
    )
    return str(created["UserPool"]["Id"])


def _ensure_anchor_bucket(client: Any, name: str) -> None:
    """The audit anchor bucket, with Object Lock as the stack creates it (stacks/audit.py)."""
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)


def _ensure_bucket(client: Any, name: str) -> None:
    """A private bucket (the documents' originals: stacks create it encrypted and versioned)."""
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=name)
