"""The composition root of every function (API groups, jobs, outbox relay, activity consumer,
migrations): what an execution environment builds once and reuses across invocations, in one
object.

Settings are validated on first use (never at import), the database handle is built from them
(its connection opens with the first transaction), and each request's scope is made here with
the audit, outbox and change writers registered in ``WRITERS``. ``reset_runtime`` forgets all
of it, as a fresh execution environment would; the local stack and the tests call it between
runs.
"""

from __future__ import annotations

import sys
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.utilities import parameters

from lambdas.shared.db import Connection, Database
from lambdas.shared.scope import (
    ActorType,
    AuditLog,
    ChangeRecorder,
    Outbox,
    RequestScope,
    Writers,
)
from lambdas.shared.secrets import DbCredentials, get_db_credentials
from lambdas.shared.settings import (
    ActivityConsumerSettings,
    ActivitySettings,
    ApiSettings,
    AuditSettings,
    BillingSettings,
    ChatSettings,
    JobSettings,
    LeadsSettings,
    MembersSettings,
    MigrationSettings,
    OutboxRelaySettings,
)

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client


def _audit_writer(conn: Connection, scope: RequestScope) -> AuditLog:
    """The transaction's tenant chain, or the platform's when it is scoped to no tenant."""
    # Imported by the first write: a read-only request never loads the chain's hashing and
    # RFC 8785 canonicalisation, nor the event catalog's models (scripts/bench/imports.py).
    from lambdas.shared.audit import AuditWriter, PlatformAuditWriter  # noqa: PLC0415

    if scope.tenant_id is None:
        return PlatformAuditWriter(
            conn,
            actor_id=scope.actor_id,
            actor_type=scope.actor_type,
            request_id=scope.request_id,
        )
    return AuditWriter(
        conn,
        tenant_id=scope.tenant_id,
        actor_id=scope.actor_id,
        actor_type=scope.actor_type,
        request_id=scope.request_id,
    )


def _change_writer(conn: Connection, scope: RequestScope) -> ChangeRecorder:
    """A change's audit row and outbox event in one statement, in the transaction's chain."""
    from lambdas.shared.audit import ChangeWriter  # noqa: PLC0415  (see _audit_writer)

    return ChangeWriter(
        conn,
        tenant_id=scope.tenant_id,
        actor_id=scope.actor_id,
        actor_type=scope.actor_type,
        request_id=scope.request_id,
    )


def _outbox_writer(conn: Connection, scope: RequestScope) -> Outbox:
    from lambdas.shared.outbox import OutboxWriter  # noqa: PLC0415  (see _audit_writer)

    return OutboxWriter(conn, tenant_id=scope.tenant_id)


# The audit and outbox writers every request scope offers its units of work, each built on
# first use in a transaction over that transaction's connection.
WRITERS = Writers(audit=_audit_writer, outbox=_outbox_writer, changes=_change_writer)


class Runtime:
    """One execution environment's settings, database handle and AWS clients."""

    def __init__(self, *, writers: Writers = WRITERS) -> None:
        self.writers = writers

    @cached_property
    def api_settings(self) -> ApiSettings:
        return ApiSettings()  # type: ignore[call-arg,unused-ignore]

    @cached_property
    def audit_settings(self) -> AuditSettings:
        return AuditSettings()  # type: ignore[call-arg,unused-ignore]

    @cached_property
    def billing_settings(self) -> BillingSettings:
        return BillingSettings()  # type: ignore[call-arg,unused-ignore]

    @cached_property
    def leads_settings(self) -> LeadsSettings:
        return LeadsSettings()  # type: ignore[call-arg,unused-ignore]

    @cached_property
    def chat_settings(self) -> ChatSettings:
        return ChatSettings()  # type: ignore[call-arg,unused-ignore]

    @cached_property
    def job_settings(self) -> JobSettings:
        return JobSettings()  # type: ignore[call-arg,unused-ignore]

    @cached_property
    def members_settings(self) -> MembersSettings:
        return MembersSettings()  # type: ignore[call-arg,unused-ignore]

    @cached_property
    def outbox_relay_settings(self) -> OutboxRelaySettings:
        return OutboxRelaySettings()  # type: ignore[call-arg,unused-ignore]

    @cached_property
    def activity_settings(self) -> ActivitySettings:
        return ActivitySettings()  # type: ignore[call-arg,unused-ignore]

    @cached_property
    def activity_consumer_settings(self) -> ActivityConsumerSettings:
        return ActivityConsumerSettings()  # type: ignore[call-arg,unused-ignore]

    @cached_property
    def migration_settings(self) -> MigrationSettings:
        return MigrationSettings()  # type: ignore[call-arg,unused-ignore]

    @cached_property
    def database(self) -> Database:
        """The database handle (the connection itself opens on first use)."""
        settings = self.api_settings

        def credentials(force: bool) -> DbCredentials:
            return get_db_credentials(
                settings.db_secret_id, max_age=settings.db_secret_max_age_s, force=force
            )

        return Database(
            credentials,
            connect_timeout_s=settings.db_connect_timeout_s,
            application_name=settings.db_application_name,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        return boto3.client("dynamodb")

    @cached_property
    def cognito(self) -> CognitoIdentityProviderClient:
        return boto3.client("cognito-idp")

    @cached_property
    def s3(self) -> S3Client:
        return boto3.client("s3")

    @cached_property
    def ses(self) -> Any:  # SES v2; no stubs for it in the lock, the sender's port is typed
        return boto3.client("sesv2")

    @cached_property
    def eventbridge(self) -> Any:  # no EventBridge stubs in the lock; the publisher takes Any
        return boto3.client("events")

    def request_scope(
        self,
        *,
        request_id: str | None,
        read_only: bool,
        actor_type: ActorType = "anonymous",
    ) -> RequestScope:
        """A new request's scope over this environment's database and registered writers."""
        return RequestScope(
            lambda: self.database,
            request_id=request_id,
            read_only=read_only,
            actor_type=actor_type,
            writers=self.writers,
        )

    def close(self) -> None:
        """Close the database connection, if one was opened."""
        if "database" in self.__dict__:
            self.database.close()


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    return Runtime()


def reset_runtime() -> None:
    """Forget everything a warm execution environment cached: the runtime (settings, the
    connection, clients), the secrets Powertools cached, and the idempotency stores with their
    DynamoDB clients."""
    if get_runtime.cache_info().currsize:
        get_runtime().close()
    get_runtime.cache_clear()
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    # Only API groups import the idempotency layer (Powertools' event handler with it): the
    # relay, the consumer and the migration function never load it, so it holds nothing there.
    idempotency = sys.modules.get("lambdas.shared.idempotency")
    if idempotency is not None:
        idempotency.forget_stores()
