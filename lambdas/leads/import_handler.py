"""The CSV import ingestion Lambda: S3 ``ObjectCreated`` events on the imports bucket.

The object key (``imports/<tenant_id>/<import_id>.csv``) names the tenant and the import; the
file is applied in that tenant's transaction (RLS applies), all or nothing. A redelivered
event finds the import finished and changes nothing.
"""

from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from typing import Any
    from urllib.parse import unquote_plus
    from uuid import UUID

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.leads.csv_import import MAX_IMPORT_BYTES
    from lambdas.leads.imports import (
        ImportAlreadyFinished,
        ImportNotFound,
        ImportService,
        ids_from_key,
    )
    from lambdas.leads.intake_runtime import suppression_key
    from lambdas.leads.intake_uow import LeadsIntakeUnitOfWork
    from lambdas.shared.observability import logger, metrics, tracer
    from lambdas.shared.runtime import get_runtime


def _ingest(bucket: str, key: str, size: int, request_id: str) -> str:
    ids = ids_from_key(key)
    if ids is None:
        logger.warning("object outside the imports layout ignored", extra={"key": key})
        return "ignored"
    tenant_id, import_id = ids
    with get_runtime().request_scope(
        request_id=request_id, read_only=False, actor_type="system"
    ) as scope:

        def uow() -> LeadsIntakeUnitOfWork:
            return LeadsIntakeUnitOfWork(scope, tenant_id)

        service = ImportService(uow, suppression_key=suppression_key())
        try:
            if size > MAX_IMPORT_BYTES:
                result = service.reject(import_id, f"the file exceeds {MAX_IMPORT_BYTES} bytes")
            else:
                body = get_runtime().s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                result = service.apply(import_id, body)
        except (ImportAlreadyFinished, ImportNotFound) as error:
            logger.info(
                "import not applied", extra={"import_id": str(import_id), "why": error.code}
            )
            return error.code
    _log_result(import_id, result.status, result.imported_rows, result.rejected_rows)
    return result.status


def _log_result(import_id: UUID, status: str, imported: int | None, rejected: int | None) -> None:
    logger.info(
        "import applied",
        extra={"import_id": str(import_id), "status": status, "imported": imported,
               "rejected": rejected},
    )  # fmt: skip


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcomes = []
    for record in event.get("Records", []):
        s3 = record["s3"]
        outcomes.append(
            _ingest(
                s3["bucket"]["name"],
                unquote_plus(s3["object"]["key"]),
                int(s3["object"].get("size", 0)),
                context.aws_request_id,
            )
        )
    return {"outcomes": outcomes}
