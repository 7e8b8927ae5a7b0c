"""The leads intake's composition root: its settings, the suppression key and the AWS clients
(SES, S3), built on first use and kept for the execution environment's life."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from pydantic import Field

from lambdas.shared.constants import SECRET_CACHE_SECONDS
from lambdas.shared.secrets import get_json_secret
from lambdas.shared.settings import ApiSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class LeadsIntakeSettings(ApiSettings):
    """Outreach sends from a verified SES identity; identifiers are matched against the
    suppression list with an HMAC key kept in Secrets Manager (JSON ``{"hmac_key": "..."}``,
    at least 32 bytes); CSV files are uploaded to the imports bucket."""

    suppression_key_secret_id: str = Field(alias="LEADS_SUPPRESSION_KEY_SECRET_ARN")
    outreach_sender: str | None = Field(default=None, alias="LEADS_OUTREACH_SENDER")
    imports_bucket: str | None = Field(default=None, alias="LEADS_IMPORTS_BUCKET")
    secret_max_age_s: int = Field(default=SECRET_CACHE_SECONDS, ge=0)
    upload_url_ttl_s: int = Field(default=900, ge=60, le=3600)


@cache
def intake_settings() -> LeadsIntakeSettings:
    return LeadsIntakeSettings()


def suppression_key() -> bytes:
    settings = intake_settings()
    secret = get_json_secret(settings.suppression_key_secret_id, max_age=settings.secret_max_age_s)
    return str(secret["hmac_key"]).encode()


@cache
def ses_client() -> Any:
    return boto3.client("sesv2")


@cache
def s3_client() -> S3Client:
    return boto3.client("s3")


def reset_intake_runtime() -> None:
    """Forget the cached settings and clients (a fresh execution environment)."""
    intake_settings.cache_clear()
    ses_client.cache_clear()
    s3_client.cache_clear()
