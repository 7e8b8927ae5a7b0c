"""CSV imports: a presigned upload, then the ingestion Lambda applies the file; the import's
status and its report of rejected rows."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from lambdas.leads.imports import (
    ImportNotFound,
    ImportRequest,
    ImportService,
    ImportStatus,
    S3UploadSigner,
    UploadTicket,
)
from lambdas.leads.intake_routing import caller_id, tenant_uow
from lambdas.leads.intake_runtime import intake_settings, suppression_key
from lambdas.shared.errors import ServiceUnavailable, error_responses
from lambdas.shared.runtime import get_runtime

router = Router()  # type: ignore[no-untyped-call]
_uow = tenant_uow(router)


@router.post(
    "/api/leads/imports",
    status_code=201,
    summary="Open a CSV import: returns a presigned S3 POST for the file",
    description=(
        "POST the file to `url` with `fields` (multipart form, `file` last), at most "
        "`max_bytes`. Columns: full_name, email, phone, company, company_tax_id, job_title, "
        "tags (`;`-separated); email or phone required. The import is applied when the file "
        "lands; `GET /api/leads/imports/{import_id}` shows its status and rejected rows."
    ),
    responses=error_responses(ServiceUnavailable, success=201),
)
def open_import(request: ImportRequest) -> UploadTicket:
    settings = intake_settings()
    if not settings.imports_bucket:
        raise ServiceUnavailable("CSV imports are not configured")
    service = ImportService(_uow, suppression_key=suppression_key())
    return service.request_upload(
        request,
        signer=S3UploadSigner(get_runtime().s3, bucket=settings.imports_bucket),
        expires_in_s=settings.upload_url_ttl_s,
        requested_by=caller_id(router),
    )


@router.get(
    "/api/leads/imports/<import_id>",
    summary="An import's status, counts and the rejected rows with their reasons",
    responses=error_responses(ImportNotFound),
)
def get_import(import_id: Annotated[UUID, Path()]) -> ImportStatus:
    return ImportService(_uow, suppression_key=b"").get(import_id)
