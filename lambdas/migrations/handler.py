"""The migration Lambda: a CloudFormation custom resource (CDK Provider framework) and a
per-environment operator entry point (``{"action": "status"|"plan"|"apply"|"baseline"}``).
"""

from __future__ import annotations

from typing import Any

import psycopg
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.migrations.runner import MigrationRunner, RuntimeRole
from lambdas.shared.observability import logger
from lambdas.shared.secrets import get_db_credentials, get_json_secret
from lambdas.shared.settings import MigrationSettings, get_migration_settings

PHYSICAL_RESOURCE_ID = "alquimista-schema"


def _runner(settings: MigrationSettings) -> MigrationRunner:
    def connect() -> psycopg.Connection[Any]:
        creds = get_db_credentials(settings.master_secret_id, max_age=300)
        return psycopg.connect(
            host=creds.host,
            port=creds.port,
            dbname=creds.dbname,
            user=creds.username,
            password=creds.password,
            connect_timeout=settings.db_connect_timeout_s,
            application_name="alquimista-migrations",
        )

    runtime_role = None
    if settings.runtime_secret_id:
        secret = get_json_secret(settings.runtime_secret_id, max_age=300)
        runtime_role = RuntimeRole(name=settings.runtime_role, password=str(secret["password"]))
    return MigrationRunner(connect, runtime_role=runtime_role)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_migration_settings()
    request_type = event.get("RequestType")
    if request_type is not None:
        if request_type == "Delete":
            return {"PhysicalResourceId": event.get("PhysicalResourceId", PHYSICAL_RESOURCE_ID)}
        report = _runner(settings).apply().as_dict()
        logger.info("migrations applied", extra={"report": report})
        return {
            "PhysicalResourceId": PHYSICAL_RESOURCE_ID,
            "Data": {"Applied": len(report["applied"])},
        }
    action = event.get("action", "apply")
    if action != "apply":
        raise ValueError(f"unsupported action {action!r}")
    return _runner(settings).apply().as_dict()
