"""Settings models, composed from small mixins and validated once per cold start.

Nothing here reads the environment at import time, and nothing here caches: every function
reads its settings through its composition root (``lambdas.shared.runtime.Runtime``), on first
use, and keeps them for the life of the execution environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lambdas.shared.constants import (
    AUDIT_ANCHOR_RETENTION_DAYS,
    DB_CONNECT_TIMEOUT_S,
    SECRET_CACHE_SECONDS,
    resource_names,
)


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


class AuditAnchorSettings(_Base):
    """Where the audit chain's heads are anchored: an S3 bucket with Object Lock (COMPLIANCE)."""

    audit_anchor_bucket: str | None = Field(default=None, alias="AUDIT_ANCHOR_BUCKET")
    audit_anchor_retention_days: int = Field(
        default=AUDIT_ANCHOR_RETENTION_DAYS, ge=1, alias="AUDIT_ANCHOR_RETENTION_DAYS"
    )


class AuditSettings(ApiSettings, AuditAnchorSettings):
    """The audit Lambda compares chains with the latest anchor."""


class BillingSettings(ApiSettings):
    """The billing Lambda also verifies payment webhooks, with one secret per provider in
    Secrets Manager (JSON ``{"webhook_secret": "..."}``)."""

    stripe_webhook_secret_id: str | None = Field(default=None, alias="STRIPE_WEBHOOK_SECRET_ARN")
    mercadopago_webhook_secret_id: str | None = Field(
        default=None, alias="MERCADOPAGO_WEBHOOK_SECRET_ARN"
    )
    webhook_secret_max_age_s: int = Field(default=SECRET_CACHE_SECONDS, ge=0)

    def webhook_secret_id(self, provider: str) -> str | None:
        return {
            "stripe": self.stripe_webhook_secret_id,
            "mercadopago": self.mercadopago_webhook_secret_id,
        }.get(provider)


class LeadsSettings(ApiSettings):
    """The leads Lambda also hashes e-mails, phones and IPs for the suppression list and the
    consent proof, with one HMAC key in Secrets Manager (JSON ``{"hmac_key": "..."}``)."""

    suppression_secret_id: str | None = Field(default=None, alias="LEADS_SUPPRESSION_SECRET_ARN")
    suppression_secret_max_age_s: int = Field(default=SECRET_CACHE_SECONDS, ge=0)
    # Outreach sends from a verified SES identity (unset: outreach answers 503); CSV files are
    # uploaded to the imports bucket through presigned POSTs living this long.
    outreach_sender: str | None = Field(default=None, alias="LEADS_OUTREACH_SENDER")
    imports_bucket: str | None = Field(default=None, alias="LEADS_IMPORTS_BUCKET")
    upload_url_ttl_s: int = Field(default=900, ge=60, le=3600)


class MigrationSettings(ServiceSettings):
    """The migration Lambda connects as the owner and manages the runtime role's password."""

    master_secret_id: str = Field(alias="MASTER_SECRET_ARN")
    runtime_secret_id: str | None = Field(default=None, alias="RUNTIME_SECRET_ARN")
    db_connect_timeout_s: int = Field(default=10, ge=1, le=60)
    db_secret_max_age_s: int = Field(default=SECRET_CACHE_SECONDS, ge=0)
    connect_retry_s: float = Field(default=90.0, ge=0, alias="MIGRATION_CONNECT_RETRY_S")
    lock_wait_s: float = Field(default=60.0, ge=0, alias="MIGRATION_LOCK_WAIT_S")
    lock_timeout_s: float = Field(default=30.0, gt=0, alias="MIGRATION_LOCK_TIMEOUT_S")
    time_margin_s: float = Field(default=15.0, ge=0, alias="MIGRATION_TIME_MARGIN_S")
    allow_out_of_order: bool = Field(default=False, alias="MIGRATION_ALLOW_OUT_OF_ORDER")
    migrations_dir: Path | None = Field(default=None, alias="MIGRATIONS_DIR")

    @property
    def runtime_role(self) -> str:
        return resource_names(self.environment).runtime_db_role


class JobSettings(ApiSettings, AuditAnchorSettings):
    """The scheduled-jobs Lambda: the API's database access, the locks table and the audit
    anchor bucket."""

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


class MembersSettings(ApiSettings):
    """The members route group invites users into the stack's Cognito user pool."""

    user_pool_id: str = Field(alias="USER_POOL_ID")


class ActivityConsumerSettings(ServiceSettings):
    """The activity consumer needs no database: it projects events into DynamoDB."""

    activity_table: str = Field(alias="ACTIVITY_TABLE_NAME")


class LlmSettings(_Base):
    """An OpenAI-compatible provider: its base URL (None: OpenAI's), the secret holding its key
    (JSON ``{"api_key": "..."}``; None: ``LLM_API_KEY``, for the offline server), the models,
    the per-request timeout and the bounded retries on 429/5xx."""

    llm_base_url: str | None = Field(default=None, alias="LLM_BASE_URL")
    llm_secret_id: str | None = Field(default=None, alias="LLM_SECRET_ARN")
    llm_api_key: str | None = Field(default=None, alias="LLM_API_KEY", repr=False)
    llm_secret_max_age_s: int = Field(default=SECRET_CACHE_SECONDS, ge=0)
    llm_chat_model: str = Field(default="gpt-4o-mini", alias="LLM_CHAT_MODEL")
    llm_embedding_model: str = Field(default="text-embedding-3-small", alias="LLM_EMBEDDING_MODEL")
    llm_timeout_s: float = Field(default=30.0, gt=0, le=300, alias="LLM_TIMEOUT_S")
    llm_max_retries: int = Field(default=2, ge=0, le=5, alias="LLM_MAX_RETRIES")


class ChatSettings(ApiSettings, LlmSettings):
    """The chat and ingestion Lambdas: the API's database access, the provider, the bucket of
    the originals and the monthly token quota when neither an override nor the plan sets one."""

    documents_bucket: str | None = Field(default=None, alias="DOCUMENTS_BUCKET_NAME")
    chat_default_monthly_tokens: int = Field(
        default=1_000_000, ge=0, alias="CHAT_DEFAULT_MONTHLY_TOKENS"
    )


def environment_variables(model: type[BaseSettings], **values: Any) -> dict[str, str]:
    """The environment variables that give ``model``'s fields these values, by field name.

    The one place that turns settings fields into variable names: the stacks and the local
    stack build every function's environment through it, so a renamed alias renames the
    variable everywhere, and a misspelt field fails here instead of being ignored.
    """
    fields = model.model_fields
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise KeyError(f"{model.__name__} has no field {', '.join(unknown)}")
    return {
        (fields[name].alias or name).upper(): str(value)
        for name, value in values.items()
        if value is not None
    }
