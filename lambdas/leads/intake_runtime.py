"""The leads intake's dependencies from the composition root: the group's settings and the
suppression key (its AWS clients are the runtime's: ``get_runtime().s3``, ``.ses``)."""

from __future__ import annotations

from lambdas.shared.runtime import get_runtime
from lambdas.shared.secrets import get_json_secret
from lambdas.shared.settings import LeadsSettings


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
