"""A tenant's documents: a presigned upload of the original (the S3 event then ingests it,
``lambdas/chat/ingest_handler.py``), their status, and the listing.

The upload's id is the document's: the object key is ``documents/<tenant>/<id>/<filename>``,
and the ingestion stores the document under that id, so ``GET /api/chat/documents/{id}``
answers 404 until the upload has arrived and ingestion has started, then ``processing``,
``ready`` or ``failed`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol
from uuid import UUID, uuid4

from lambdas.chat.constants import DOCUMENTS_PREFIX, MAX_DOCUMENT_BYTES
from lambdas.chat.extraction import content_type_for
from lambdas.chat.knowledge_repository import KnowledgeRepository
from lambdas.chat.schemas import (
    DocumentPage,
    DocumentResponse,
    DocumentUploadResponse,
    PresignedUpload,
)
from lambdas.shared import cursors
from lambdas.shared.errors import NotFound, ServiceUnavailable
from lambdas.shared.scope import ChangeRecorder

UPLOAD_TTL_S = 15 * 60


class DocumentNotFound(NotFound):
    code = "document_not_found"


class UploadsNotConfigured(ServiceUnavailable):
    code = "document_uploads_unavailable"


class UploadTarget(Protocol):
    """Where originals are uploaded (S3 in the Lambdas: ``lambdas/chat/uploads.py``)."""

    def presign(
        self, key: str, *, title: str, content_type: str, max_bytes: int, expires_in_s: int
    ) -> tuple[str, dict[str, str], datetime]: ...


class DocumentsUow(ChangeRecorder, AbstractContextManager["DocumentsUow"], Protocol):
    @property
    def knowledge(self) -> KnowledgeRepository: ...

    def commit(self) -> None: ...


DocumentsUowFactory = Callable[[], DocumentsUow]


def object_key(tenant_id: UUID, document_id: UUID, filename: str) -> str:
    return f"{DOCUMENTS_PREFIX}{tenant_id}/{document_id}/{filename}"


def request_upload(
    uow: DocumentsUowFactory,
    target: UploadTarget | None,
    *,
    tenant_id: UUID,
    title: str,
    filename: str,
) -> DocumentUploadResponse:
    """A presigned upload for one original; recorded as ``document.upload_requested``."""
    if target is None:
        raise UploadsNotConfigured("document uploads are not configured in this environment")
    document_id = uuid4()
    key = object_key(tenant_id, document_id, filename)
    content_type = content_type_for(filename)
    url, fields, expires_at = target.presign(
        key,
        title=title.strip(),
        content_type=content_type,
        max_bytes=MAX_DOCUMENT_BYTES,
        expires_in_s=UPLOAD_TTL_S,
    )
    with uow() as work:
        work.record(
            "document.upload_requested",
            aggregate_type="document",
            aggregate_id=str(document_id),
            payload={"document_id": document_id, "content_type": content_type},
        )
        work.commit()
    return DocumentUploadResponse(
        document_id=document_id,
        key=key,
        upload=PresignedUpload(
            url=url, fields=fields, expires_at=expires_at, max_bytes=MAX_DOCUMENT_BYTES
        ),
    )


def get_document(uow: DocumentsUowFactory, document_id: UUID) -> DocumentResponse:
    """A document of the tenant or a global one, with its ingestion status."""
    with uow() as work:
        document = work.knowledge.get(document_id)
        work.commit()
    if document is None:
        raise DocumentNotFound("document not found")
    return DocumentResponse.of(document)


def _valid_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


def list_documents(
    uow: DocumentsUowFactory, *, cursor: str | None, limit: int, include_global: bool
) -> DocumentPage:
    """The tenant's documents (and the global ones unless excluded), newest first."""
    before = UUID(cursors.decode_cursor(cursor, valid=_valid_uuid)) if cursor else None
    with uow() as work:
        documents = work.knowledge.list_documents(
            limit=limit + 1, before=before, include_global=include_global
        )
        work.commit()
    has_more = len(documents) > limit
    items = [DocumentResponse.of(d) for d in documents[:limit]]
    return DocumentPage(
        items=items,
        next_cursor=cursors.encode_cursor(str(items[-1].id)) if has_more else None,
    )
