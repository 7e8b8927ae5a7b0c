"""Presigned S3 uploads of originals into the documents bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote


class S3Uploads:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def presign(
        self, key: str, *, title: str, content_type: str, max_bytes: int, expires_in_s: int
    ) -> tuple[str, dict[str, str], datetime]:
        """A presigned POST for exactly ``key``, at most ``max_bytes``, carrying the title as
        ``x-amz-meta-title`` (percent-encoded UTF-8: S3 metadata is ASCII)."""
        title_field = quote(title)
        fields = {"x-amz-meta-title": title_field, "Content-Type": content_type}
        conditions: list[Any] = [
            {"x-amz-meta-title": title_field},
            {"Content-Type": content_type},
            ["content-length-range", 1, max_bytes],
        ]
        post = self._client.generate_presigned_post(
            Bucket=self._bucket,
            Key=key,
            Fields=fields,
            Conditions=conditions,
            ExpiresIn=expires_in_s,
        )
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in_s)
        return str(post["url"]), {k: str(v) for k, v in post["fields"].items()}, expires_at
