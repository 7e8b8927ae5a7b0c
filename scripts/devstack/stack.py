"""Composes the local stack: AWS resources on moto, migrations through the migration Lambda,
dev seed data, and the gateway. Used by ``scripts/dev.py`` and by the api test tier."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from scripts.devstack.aws_resources import LocalResources, provision
from scripts.devstack.context import LambdaContextStub
from scripts.devstack.postgres import ConnectionInfo

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

LOCAL_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto accepts any key; these are not credentials
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
MIGRATION_LAMBDA_TIMEOUT_MS = 900_000
QUIET_POWERTOOLS_ENV = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "Alquimista",
    "POWERTOOLS_SERVICE_NAME": "alquimista",
}


def reset_lambda_caches() -> None:
    """Forget what a warm execution environment cached (its composition root: settings,
    secrets, the connection, AWS clients), as a fresh one would."""
    from lambdas.shared.runtime import reset_runtime  # noqa: PLC0415

    reset_runtime()


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def custom_resource_event(request_type: str, properties: dict[str, Any]) -> dict[str, Any]:
    """The event the CDK Provider framework hands its onEvent Lambda."""
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:000000000000:function:provider",
        "ResponseURL": "http://127.0.0.1/unused",
        "StackId": "arn:aws:cloudformation:us-east-1:000000000000:stack/Alquimista-dev-Data/local",
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": "SchemaMigrations",
        "ResourceType": "Custom::SchemaMigrations",
        "ResourceProperties": properties,
    }
    if request_type != "Create":
        event["PhysicalResourceId"] = "alquimista-schema"
    return event


def run_migrations(request_type: str = "Create", properties: dict[str, Any] | None = None) -> Any:
    """Invoke the migration Lambda's handler exactly as a deploy does."""
    from lambdas.migrations.handler import lambda_handler  # noqa: PLC0415

    event = custom_resource_event(request_type, properties or {"MigrationsHash": "local"})
    context = LambdaContextStub(
        function_name="alquimista-dev-migrations",
        deadline_ms=time.time() * 1000 + MIGRATION_LAMBDA_TIMEOUT_MS,
    )
    return lambda_handler(event, cast("LambdaContext", context))


def provision_and_migrate(
    env: str, server: ConnectionInfo, *, dbname: str, suppression_key: str | None = None
) -> LocalResources:
    resources = provision(env, server, dbname=dbname, suppression_key=suppression_key)
    os.environ.update(resources.lambda_environment(env))
    reset_lambda_caches()
    run_migrations("Create")
    return resources
