"""What S3's ``ObjectCreated`` notification does on AWS, for the local stack: moto's server
sends no notifications, so a poller lists a bucket under the notification's prefix (and
suffix) and invokes the ingestion function with an S3 event for each object it has not seen:
the chat documents bucket (docs/chat.md, "Local stack") and the leads CSV imports bucket
(docs/leads.md).

An object seen again after a restart is re-ingested, as a retried S3 event would be: a document
is reported as a duplicate, an import already finished is left as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from lambdas.chat.constants import DOCUMENTS_PREFIX
from lambdas.leads.imports import IMPORT_PREFIX, IMPORT_SUFFIX
from lambdas.shared.constants import ResourceNames

Invoke = Callable[[dict[str, Any]], object]


@dataclass(frozen=True)
class NotifiedBucket:
    """A bucket whose new objects (under ``prefix``, ending with ``suffix``) invoke ``handler``
    on AWS through an S3 notification."""

    label: str
    handler: str
    bucket: str
    prefix: str
    suffix: str = ""


def notified_buckets(names: ResourceNames) -> list[NotifiedBucket]:
    """The local stack's buckets with the notifications the stacks give them on AWS."""
    return [
        NotifiedBucket(
            "chat-ingest",
            "lambdas.chat.ingest_handler.lambda_handler",
            names.documents_bucket,
            DOCUMENTS_PREFIX,
        ),
        NotifiedBucket(
            "leads-import",
            "lambdas.leads.import_handler.lambda_handler",
            names.leads_imports_bucket,
            IMPORT_PREFIX,
            IMPORT_SUFFIX,
        ),
    ]


def object_created_event(bucket: str, key: str, size: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Post",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size}},
            }
        ]
    }


class IngestionPoller:
    """The notification of ``bucket`` for objects under ``prefix`` whose key ends with
    ``suffix`` (the filter the stacks give the bucket's notification)."""

    def __init__(
        self, bucket: str, invoke: Invoke, *, prefix: str = DOCUMENTS_PREFIX, suffix: str = ""
    ) -> None:
        self._bucket = bucket
        self._invoke = invoke
        self._prefix = prefix
        self._suffix = suffix
        self._seen: set[tuple[str, str]] = set()
        self._s3 = boto3.client("s3")

    def poll_once(self) -> list[object]:
        """Invoke the function once per new object; what each invocation returned."""
        results = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
            for item in page.get("Contents", []):
                marker = (item["Key"], item["ETag"])
                if marker in self._seen or not item["Key"].endswith(self._suffix):
                    continue
                self._seen.add(marker)
                results.append(
                    self._invoke(object_created_event(self._bucket, item["Key"], item["Size"]))
                )
        return results


def start_ingestion_poller(
    bucket: str,
    invoke: Invoke,
    *,
    prefix: str = DOCUMENTS_PREFIX,
    suffix: str = "",
    interval_s: float = 1.0,
    report: Callable[[object], None] = print,
    name: str = "dev-ingestion",
) -> Callable[[], None]:
    """Poll in a daemon thread every ``interval_s``; returns the function that stops it."""
    poller = IngestionPoller(bucket, invoke, prefix=prefix, suffix=suffix)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                for result in poller.poll_once():
                    report(result)
            except Exception as error:
                report({"ingestion_poller": name, "failed": repr(error)})

    threading.Thread(target=loop, name=name, daemon=True).start()
    return stop.set
