"""The external anchor: every tenant's chain head, written to an S3 bucket with Object Lock in
COMPLIANCE mode, so no one (not a database superuser, not the account root) can rewrite or
delete an anchor before its retention ends."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from botocore.exceptions import ClientError

from lambdas.audit.models import AnchorDocument, AnchorReport
from lambdas.shared.audit import Anchor

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# One key: the bucket is versioned, and every version stays locked for its retention, so the
# key's version list is the anchor history (and IAM needs no wildcard).
LATEST_KEY = "heads/latest.json"


class S3AnchorStore:
    """Writes anchor documents (each object version locked until its retention date) and reads
    the latest one back."""

    def __init__(self, client: S3Client, *, bucket: str, retention_days: int) -> None:
        self._client = client
        self._bucket = bucket
        self._retention = timedelta(days=retention_days)

    def put(self, document: AnchorDocument) -> AnchorReport:
        """Write the document as a new version of the latest anchor, locked until its date."""
        retain_until = document.at + self._retention
        response = self._client.put_object(
            Bucket=self._bucket,
            Key=LATEST_KEY,
            Body=document.model_dump_json().encode(),
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=retain_until,
        )
        return AnchorReport(
            key=LATEST_KEY,
            version_id=response.get("VersionId"),
            tenants=len(document.heads),
            retain_until=retain_until,
        )

    def latest(self) -> AnchorDocument | None:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=LATEST_KEY)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise
        return AnchorDocument.model_validate_json(response["Body"].read())

    def latest_for(self, tenant_id: UUID) -> Anchor | None:
        """The tenant's head in the latest anchor (None before its first anchored append)."""
        document = self.latest()
        if document is None:
            return None
        return anchor_of(document, tenant_id)


def anchor_of(document: AnchorDocument, tenant_id: UUID) -> Anchor | None:
    for head in document.heads:
        if head.tenant_id == tenant_id:
            return Anchor(tenant_id=tenant_id, seq=head.seq, row_hash=head.row_hash, at=document.at)
    return None


def anchor_age_s(document: AnchorDocument | None, now: datetime) -> float | None:
    return None if document is None else (now - document.at).total_seconds()
