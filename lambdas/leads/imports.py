"""Bulk CSV import of leads: an upload ticket (a presigned S3 POST), then the file applied as
one transaction, all or nothing, with a report naming every rejected row and why."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict
from datetime import datetime
from typing import Any, Final, Literal, Protocol
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from lambdas.leads.csv_import import (
    MAX_IMPORT_BYTES,
    InvalidImportFile,
    ParsedFile,
    RejectedRow,
    parse_leads_csv,
)
from lambdas.leads.intake_uow import LeadsIntakeUnitOfWork
from lambdas.leads.suppression import lead_digests
from lambdas.shared.errors import Conflict, NotFound

IntakeUowFactory = Callable[[], AbstractContextManager[LeadsIntakeUnitOfWork]]

# Uploads live at imports/<tenant>/<import>.csv; the bucket notifies the ingestion of these only.
IMPORT_PREFIX: Final = "imports/"
IMPORT_SUFFIX: Final = ".csv"


class ImportNotFound(NotFound):
    code = "import_not_found"


class ImportAlreadyFinished(Conflict):
    code = "import_already_finished"


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    legal_basis: Literal["legitimate_interest", "consent"] = "legitimate_interest"
    campanha_id: UUID | None = None
    skip_invalid: bool = Field(
        default=False,
        description="false: one rejected row refuses the whole file; true: the valid rows "
        "are imported and the rejected ones reported",
    )


class UploadTicket(BaseModel):
    import_id: UUID
    url: str
    fields: dict[str, str]
    expires_in_s: int
    max_bytes: int


class RejectedRowOut(BaseModel):
    line: int
    reason: str
    field: str | None = None


class ImportStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    status: Literal["awaiting_upload", "processing", "completed", "rejected"]
    legal_basis: str
    skip_invalid: bool
    total_rows: int | None
    imported_rows: int | None
    rejected_rows: int | None
    report: list[RejectedRowOut]
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class UploadSigner(Protocol):
    def presign(self, key: str, *, max_bytes: int, expires_in_s: int) -> tuple[str, dict[str, str]]:
        """A URL and form fields to POST a file of at most ``max_bytes`` to ``key``."""
        ...


class S3UploadSigner:
    def __init__(self, client: Any, *, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def presign(self, key: str, *, max_bytes: int, expires_in_s: int) -> tuple[str, dict[str, str]]:
        post = self._client.generate_presigned_post(
            self._bucket,
            key,
            Fields={"Content-Type": "text/csv"},
            Conditions=[["content-length-range", 1, max_bytes], {"Content-Type": "text/csv"}],
            ExpiresIn=expires_in_s,
        )
        return str(post["url"]), {k: str(v) for k, v in post["fields"].items()}


def object_key(tenant_id: UUID, import_id: UUID) -> str:
    """Where a tenant's file is uploaded; the ingestion Lambda reads both ids back from it."""
    return f"{IMPORT_PREFIX}{tenant_id}/{import_id}{IMPORT_SUFFIX}"


def ids_from_key(key: str) -> tuple[UUID, UUID] | None:
    parts = key.split("/")
    if len(parts) != 3 or f"{parts[0]}/" != IMPORT_PREFIX or not parts[2].endswith(IMPORT_SUFFIX):
        return None
    try:
        return UUID(parts[1]), UUID(parts[2].removesuffix(IMPORT_SUFFIX))
    except ValueError:
        return None


def _report(rejected: list[RejectedRow]) -> list[dict[str, Any]]:
    return [asdict(row) for row in sorted(rejected, key=lambda row: row.line)]


class ImportService:
    def __init__(self, uow_factory: IntakeUowFactory, *, suppression_key: bytes) -> None:
        self._uow = uow_factory
        self._key = suppression_key

    def request_upload(
        self,
        request: ImportRequest,
        *,
        signer: UploadSigner,
        expires_in_s: int,
        requested_by: UUID | None,
    ) -> UploadTicket:
        """Open an import and hand out where to upload its file (at most MAX_IMPORT_BYTES:
        S3 refuses a larger upload)."""
        import_id = uuid4()
        with self._uow() as uow:
            if uow.tenant_id is None:
                raise RuntimeError("imports run in a tenant's unit of work")
            key = object_key(uow.tenant_id, import_id)
            uow.imports.open(
                import_id,
                object_key=key,
                legal_basis=request.legal_basis,
                campanha_id=request.campanha_id,
                skip_invalid=request.skip_invalid,
                requested_by=requested_by,
            )
            uow.record(
                "lead_import.requested",
                aggregate_type="lead_import",
                aggregate_id=str(import_id),
                payload={"import_id": import_id, "legal_basis": request.legal_basis},
            )
            uow.commit()
        url, fields = signer.presign(key, max_bytes=MAX_IMPORT_BYTES, expires_in_s=expires_in_s)
        return UploadTicket(
            import_id=import_id,
            url=url,
            fields=fields,
            expires_in_s=expires_in_s,
            max_bytes=MAX_IMPORT_BYTES,
        )

    def get(self, import_id: UUID) -> ImportStatus:
        with self._uow() as uow:
            row = uow.imports.get(import_id)
        if row is None:
            raise ImportNotFound(f"import {import_id} not found")
        return ImportStatus.model_validate(row)

    def apply(
        self,
        import_id: UUID,
        data: bytes,
        *,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> ImportStatus:
        """Validate every row (normalised identifiers, duplicates in the file and against the
        tenant's live leads, the suppression list) and insert the leads in one transaction:
        none if any row is rejected (unless the import skips invalid rows) or anything fails.
        ``dry_run`` reports what would happen and changes nothing."""
        with self._uow() as uow:
            return self._apply_in(uow, import_id, data, dry_run=dry_run, progress=progress)

    def import_file(
        self,
        request: ImportRequest,
        data: bytes,
        *,
        source_name: str,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> ImportStatus:
        """An operator's file (scripts/import_leads.py): the import is opened and applied in
        one transaction, so a dry run leaves no trace at all."""
        import_id = uuid4()
        with self._uow() as uow:
            uow.imports.open(
                import_id,
                object_key=f"operator/{import_id}/{source_name[-200:]}",
                legal_basis=request.legal_basis,
                campanha_id=request.campanha_id,
                skip_invalid=request.skip_invalid,
                requested_by=None,
            )
            return self._apply_in(uow, import_id, data, dry_run=dry_run, progress=progress)

    def _apply_in(
        self,
        uow: LeadsIntakeUnitOfWork,
        import_id: UUID,
        data: bytes,
        *,
        dry_run: bool,
        progress: Callable[[int], None] | None,
    ) -> ImportStatus:
        row = uow.imports.get(import_id, lock=True)
        if row is None:
            raise ImportNotFound(f"import {import_id} not found")
        if row["status"] not in {"awaiting_upload", "processing"}:
            raise ImportAlreadyFinished(f"import {import_id} is {row['status']}")
        try:
            parsed = parse_leads_csv(data, legal_basis=row["legal_basis"])
        except InvalidImportFile as error:
            return self._finish(
                uow,
                import_id,
                status="rejected",
                total=0,
                imported=0,
                report=[],
                error=str(error),
                dry_run=dry_run,
            )
        self._check_against_tenant(uow, parsed)
        if parsed.rejected and not row["skip_invalid"]:
            report = _report(parsed.rejected)
            return self._finish(
                uow,
                import_id,
                status="rejected",
                total=parsed.total,
                imported=0,
                report=report,
                error=None,
                dry_run=dry_run,
            )
        for done, valid in enumerate(parsed.rows, start=1):
            fields = valid.fields.model_copy(update={"campanha_id": row["campanha_id"]})
            uow.leads.create(None, fields, email_normalized=valid.email, phone_e164=valid.phone)
            if progress is not None:
                progress(done)
        report = _report(parsed.rejected)
        return self._finish(
            uow,
            import_id,
            status="completed",
            total=parsed.total,
            imported=len(parsed.rows),
            report=report,
            error=None,
            dry_run=dry_run,
        )

    def reject(self, import_id: UUID, error: str) -> ImportStatus:
        """Refuse the whole file without reading it (e.g. larger than MAX_IMPORT_BYTES)."""
        with self._uow() as uow:
            if uow.imports.get(import_id, lock=True) is None:
                raise ImportNotFound(f"import {import_id} not found")
            return self._finish(
                uow,
                import_id,
                status="rejected",
                total=0,
                imported=0,
                report=[],
                error=error,
                dry_run=False,
            )

    def _check_against_tenant(self, uow: LeadsIntakeUnitOfWork, parsed: ParsedFile) -> None:
        """Move rows whose identifier a live lead holds, or which are suppressed, to rejected."""
        emails = [r.email for r in parsed.rows if r.email]
        phones = [r.phone for r in parsed.rows if r.phone]
        owners = uow.leads.live_owners(emails, phones)
        digests = {
            r.line: lead_digests(self._key, email=r.email, phone=r.phone) for r in parsed.rows
        }
        suppressed = uow.suppression.suppressed([d for ds in digests.values() for _, d in ds])
        kept = []
        for candidate in parsed.rows:
            owner = next(
                (
                    (kind, owners[kind, value])
                    for kind, value in (("email", candidate.email), ("phone", candidate.phone))
                    if value and (kind, value) in owners
                ),
                None,
            )
            if owner is not None:
                parsed.rejected.append(
                    RejectedRow(
                        candidate.line, f"lead {owner[1]} already has this {owner[0]}", owner[0]
                    )
                )
            elif any(d in suppressed for _, d in digests[candidate.line]):
                parsed.rejected.append(RejectedRow(candidate.line, "on the suppression list"))
            else:
                kept.append(candidate)
        parsed.rows = kept

    @staticmethod
    def _finish(
        uow: LeadsIntakeUnitOfWork,
        import_id: UUID,
        *,
        status: str,
        total: int,
        imported: int,
        report: list[dict[str, Any]],
        error: str | None,
        dry_run: bool,
    ) -> ImportStatus:
        finished = uow.imports.finish(
            import_id, status=status, total=total, imported=imported, report=report, error=error
        )
        if finished is None:
            raise ImportAlreadyFinished(f"import {import_id} was finished meanwhile")
        result = ImportStatus.model_validate(finished)
        if dry_run:
            return result  # the unit of work rolls back: nothing was imported nor recorded
        uow.record(
            "lead_import.finished",
            aggregate_type="lead_import",
            aggregate_id=str(import_id),
            payload={
                "import_id": import_id,
                "status": status,
                "total_rows": total,
                "imported_rows": imported,
                "rejected_rows": len(report),
            },
        )
        uow.commit()
        return result
