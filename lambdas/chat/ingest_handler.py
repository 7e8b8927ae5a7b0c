"""The ingestion Lambda: S3 ``ObjectCreated`` events for originals uploaded under
``documents/<tenant_id>/<upload_id>/<filename>`` are extracted, chunked, embedded and stored.

The object's ``title`` user metadata (``x-amz-meta-title``, percent-encoded UTF-8 since S3
metadata is ASCII) names the document; without it the
file name does. A duplicate is logged and skipped; a provider outage raises so the
asynchronous invocation is retried (the failed document is then restarted).
"""

from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from functools import lru_cache
    from pathlib import PurePosixPath
    from typing import Any
    from urllib.parse import unquote, unquote_plus
    from uuid import UUID

    import boto3
    from aws_lambda_powertools.utilities.data_classes import S3Event
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.chat.constants import MAX_DOCUMENT_BYTES
    from lambdas.chat.errors import DuplicateDocument, LlmUnavailable
    from lambdas.chat.extraction import content_type_for
    from lambdas.chat.ingestion import IngestionPipeline, KnowledgeUnitOfWork, sha256_hex
    from lambdas.chat.llm import LlmGateway
    from lambdas.chat.models import DocumentDraft
    from lambdas.shared.errors import AppError
    from lambdas.shared.observability import logger, metrics, tracer
    from lambdas.shared.runtime import get_runtime
    from lambdas.shared.scope import RequestScope


class ObjectKeyRejected(ValueError):
    """The key is not under documents/<tenant_id>/<upload_id>/<filename>."""


def tenant_of(key: str) -> UUID:
    parts = PurePosixPath(key).parts
    if len(parts) != 4 or parts[0] != "documents":
        raise ObjectKeyRejected(key)
    try:
        return UUID(parts[1])
    except ValueError:
        raise ObjectKeyRejected(key) from None


def upload_id_of(key: str) -> UUID | None:
    """The upload id of a key ``POST /api/chat/documents`` issued: the document's id."""
    try:
        return UUID(PurePosixPath(key).parts[2])
    except ValueError:
        return None


@lru_cache(maxsize=1)
def _gateway() -> LlmGateway:
    return LlmGateway.from_settings(get_runtime().chat_settings)


def _pipeline(scope: RequestScope) -> IngestionPipeline:
    """The pipeline of one invocation: its units of work run in the invocation's scope."""
    # the graph insertion (~4 ms a vector) is left to the index_chat_embeddings job
    return IngestionPipeline(
        lambda tenant: KnowledgeUnitOfWork(scope, tenant), _gateway(), defer_indexing=True
    )


def ingest_object(bucket: str, key: str, pipeline: IngestionPipeline) -> dict[str, Any]:
    """Fetch one object and ingest it; what happened, for the invocation's result."""
    tenant_id = tenant_of(key)
    filename = PurePosixPath(key).name
    s3 = boto3.client("s3")
    head = s3.head_object(Bucket=bucket, Key=key)
    if head["ContentLength"] > MAX_DOCUMENT_BYTES:
        return {"key": key, "status": "rejected", "reason": "document too large"}
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    draft = DocumentDraft(
        tenant_id=tenant_id,
        title=unquote(head.get("Metadata", {}).get("title", "")) or PurePosixPath(filename).stem,
        source=f"s3://{bucket}/{key}",
        file_sha256=sha256_hex(data),
        content_type=content_type_for(filename),
        s3_key=key,
        metadata={"filename": filename, "bytes": len(data)},
        id=upload_id_of(key),
    )
    try:
        document = pipeline.ingest(draft, data)
    except DuplicateDocument as duplicate:
        logger.info("duplicate document skipped", extra={"key": key, "reason": duplicate.reason})
        return {"key": key, "status": "duplicate", "reason": duplicate.reason}
    return {"key": key, "status": document.status, "document_id": str(document.id)}


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    results = []
    with get_runtime().request_scope(
        request_id=context.aws_request_id, read_only=False, actor_type="system"
    ) as scope:
        pipeline = _pipeline(scope)
        for record in S3Event(event).records:
            key = unquote_plus(record.s3.get_object.key)
            try:
                results.append(ingest_object(record.s3.bucket.name, key, pipeline))
            except LlmUnavailable:
                raise
            except (ObjectKeyRejected, AppError) as rejected:
                logger.warning("object not ingested", extra={"key": key})
                results.append({"key": key, "status": "rejected", "reason": str(rejected)})
    return {"documents": results}
