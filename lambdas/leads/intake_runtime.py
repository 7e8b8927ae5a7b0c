"""The leads intake's dependencies: the group's settings (from the composition root), the
suppression key and the AWS clients (SES, S3), built on first use and kept for the execution
environment's life."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3

from lambdas.shared.runtime import get_runtime, reset_runtime
from lambdas.shared.secrets import get_json_secret
from lambdas.shared.settings import LeadsSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def intake_settings() -> LeadsSettings:
    """The leads function's settings, from the composition root (one model for the group)."""
    return get_runtime().leads_settings


def suppression_key() -> bytes:
    settings = intake_settings()
    if not settings.suppression_secret_id:
        raise RuntimeError("LEADS_SUPPRESSION_SECRET_ARN is not set")
    secret = get_json_secret(
        settings.suppression_secret_id, max_age=settings.suppression_secret_max_age_s
    )
    return str(secret["hmac_key"]).encode()


@cache
def ses_client() -> Any:
    return boto3.client("sesv2")


@cache
def s3_client() -> S3Client:
    return boto3.client("s3")


def reset_intake_runtime() -> None:
    """Forget the cached settings and clients (a fresh execution environment)."""
    reset_runtime()
    ses_client.cache_clear()
    s3_client.cache_clear()
