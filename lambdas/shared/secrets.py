"""Credentials from Secrets Manager through Powertools parameters (cached per execution env)."""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from psycopg.conninfo import make_conninfo
from pydantic import BaseModel, ConfigDict, Field


class DbCredentials(BaseModel):
    """The JSON shape of the secret Aurora generates for a cluster (extra keys ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    host: str
    port: int = 5432
    dbname: str = "postgres"
    username: str
    password: str = Field(repr=False)
    engine: str = "postgres"

    def conninfo(self, **options: Any) -> str:
        """A libpq connection string for these credentials and ``options`` (None ones dropped)."""
        return make_conninfo(
            host=self.host,
            port=self.port,
            dbname=self.dbname,
            user=self.username,
            password=self.password,
            **options,
        )


def _provider() -> parameters.SecretsProvider:
    """Powertools' default secrets provider, on a client of boto3's default session. Left to
    itself, Powertools builds the provider on a ``boto3.session.Session()`` of its own: a second
    botocore session per execution environment, which registers its handlers and loads the
    endpoint and service models again (~100 ms of CPU at a cold start). ``parameters.
    clear_caches()`` (``reset_runtime``) forgets it with the cached values."""
    provider = DEFAULT_PROVIDERS.get("secrets")
    if provider is None:
        provider = DEFAULT_PROVIDERS["secrets"] = parameters.SecretsProvider(
            boto3_client=boto3.client("secretsmanager")
        )
    return provider


def get_json_secret(secret_id: str, *, max_age: int, force: bool = False) -> dict[str, Any]:
    value = _provider().get(secret_id, transform="json", max_age=max_age, force_fetch=force)
    if not isinstance(value, dict):
        raise TypeError(f"secret {secret_id} does not hold a JSON object")
    return value


def get_db_credentials(secret_id: str, *, max_age: int, force: bool = False) -> DbCredentials:
    return DbCredentials.model_validate(get_json_secret(secret_id, max_age=max_age, force=force))
