"""Settings models, composed from small mixins and validated once per cold start.

Nothing here reads the environment at import time: each Lambda calls its ``get_*_settings``
function inside the handler, and the result is cached for the life of the execution
environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lambdas.shared.constants import DB_CONNECT_TIMEOUT_S, SECRET_CACHE_SECONDS, resource_names


class _Base(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)


class ServiceSettings(_Base):
    environment: Literal["dev", "prod"] = Field(default="dev", alias="APP_ENV")
    log_level: str = Field(default="INFO", alias="POWERTOOLS_LOG_LEVEL")


class DatabaseSettings(_Base):
    """Where the API Lambdas' credentials live: a Secrets Manager secret in Aurora's JSON shape."""

    db_secret_id: str = Field(alias="DB_SECRET_ARN")
    db_connect_timeout_s: int = Field(default=DB_CONNECT_TIMEOUT_S, ge=1, le=30)
    db_secret_max_age_s: int = Field(default=SECRET_CACHE_SECONDS, ge=0)
    db_application_name: str = Field(default="alquimista", alias="DB_APPLICATION_NAME")
    db_statement_timeout_ms: int = Field(default=10_000, ge=100)


class ApiSettings(ServiceSettings, DatabaseSettings):
    """Settings every API route-group Lambda needs."""

    idempotency_table: str | None = Field(default=None, alias="IDEMPOTENCY_TABLE_NAME")


class BillingSettings(ApiSettings):
    """The billing Lambda also verifies payment webhooks with a secret in Secrets Manager
    (JSON ``{"signing_secret": "..."}``)."""

    webhook_secret_id: str | None = Field(default=None, alias="WEBHOOK_SECRET_ARN")
    webhook_secret_max_age_s: int = Field(default=SECRET_CACHE_SECONDS, ge=0)


class MigrationSettings(ServiceSettings):
    """The migration Lambda connects as the owner and manages the runtime role's password."""

    master_secret_id: str = Field(alias="MASTER_SECRET_ARN")
    runtime_secret_id: str | None = Field(default=None, alias="RUNTIME_SECRET_ARN")
    locks_table: str | None = Field(default=None, alias="LOCKS_TABLE_NAME")
    db_connect_timeout_s: int = Field(default=10, ge=1, le=60)
    db_secret_max_age_s: int = Field(default=SECRET_CACHE_SECONDS, ge=0)
    connect_retry_s: float = Field(default=90.0, ge=0, alias="MIGRATION_CONNECT_RETRY_S")
    lock_wait_s: float = Field(default=60.0, ge=0, alias="MIGRATION_LOCK_WAIT_S")
    lock_timeout_s: float = Field(default=30.0, gt=0, alias="MIGRATION_LOCK_TIMEOUT_S")
    time_margin_s: float = Field(default=15.0, ge=0, alias="MIGRATION_TIME_MARGIN_S")
    lease_s: int = Field(default=120, ge=10, alias="MIGRATION_LEASE_S")
    allow_out_of_order: bool = Field(default=False, alias="MIGRATION_ALLOW_OUT_OF_ORDER")
    migrations_dir: Path | None = Field(default=None, alias="MIGRATIONS_DIR")

    @property
    def runtime_role(self) -> str:
        return resource_names(self.environment).runtime_db_role


class JobSettings(ApiSettings):
    """The scheduled-jobs Lambda: the API's database access plus the locks table."""

    locks_table: str = Field(alias="LOCKS_TABLE_NAME")


class OutboxRelaySettings(ApiSettings):
    """The outbox relay: the API's database access plus the bus it publishes to."""

    event_bus_name: str = Field(alias="EVENT_BUS_NAME")
    outbox_batch_size: int = Field(default=1000, ge=1, le=5000, alias="OUTBOX_BATCH_SIZE")
    outbox_claim_s: int = Field(default=120, ge=10, alias="OUTBOX_CLAIM_S")
    outbox_max_attempts: int = Field(default=8, ge=1, le=50, alias="OUTBOX_MAX_ATTEMPTS")


class ActivitySettings(ApiSettings):
    """The activity route group reads the feed table the activity consumer writes."""

    activity_table: str = Field(alias="ACTIVITY_TABLE_NAME")


class ActivityConsumerSettings(ServiceSettings):
    """The activity consumer needs no database: it projects events into DynamoDB."""

    activity_table: str = Field(alias="ACTIVITY_TABLE_NAME")


@lru_cache(maxsize=1)
def get_outbox_relay_settings() -> OutboxRelaySettings:
    return OutboxRelaySettings()  # type: ignore[call-arg,unused-ignore]


@lru_cache(maxsize=1)
def get_activity_settings() -> ActivitySettings:
    return ActivitySettings()  # type: ignore[call-arg,unused-ignore]


@lru_cache(maxsize=1)
def get_activity_consumer_settings() -> ActivityConsumerSettings:
    return ActivityConsumerSettings()  # type: ignore[call-arg,unused-ignore]


@lru_cache(maxsize=1)
def get_job_settings() -> JobSettings:
    return JobSettings()  # type: ignore[call-arg,unused-ignore]


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    return ApiSettings()  # type: ignore[call-arg,unused-ignore]


@lru_cache(maxsize=1)
def get_billing_settings() -> BillingSettings:
    return BillingSettings()  # type: ignore[call-arg,unused-ignore]


@lru_cache(maxsize=1)
def get_migration_settings() -> MigrationSettings:
    return MigrationSettings()  # type: ignore[call-arg,unused-ignore]
