"""What S3's ``ObjectCreated`` notification does on AWS, for the local stack: moto's server
sends no notifications, so a poller lists the documents bucket and invokes the ingestion
function with an S3 event for each object it has not seen (docs/chat.md, "Local stack").

An object seen again after a restart is re-ingested and reported as a duplicate, as a retried
S3 event would be.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3

from lambdas.chat.constants import DOCUMENTS_PREFIX

Invoke = Callable[[dict[str, Any]], object]


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
    def __init__(self, bucket: str, invoke: Invoke) -> None:
        self._bucket = bucket
        self._invoke = invoke
        self._seen: set[tuple[str, str]] = set()
        self._s3 = boto3.client("s3")

    def poll_once(self) -> list[object]:
        """Invoke the function once per new object; what each invocation returned."""
        results = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=DOCUMENTS_PREFIX):
            for item in page.get("Contents", []):
                marker = (item["Key"], item["ETag"])
                if marker in self._seen:
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
    interval_s: float = 1.0,
    report: Callable[[object], None] = print,
) -> Callable[[], None]:
    """Poll in a daemon thread every ``interval_s``; returns the function that stops it."""
    poller = IngestionPoller(bucket, invoke)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                for result in poller.poll_once():
                    report(result)
            except Exception as error:
                report({"ingestion_poller": "failed", "error": repr(error)})

    threading.Thread(target=loop, name="dev-ingestion", daemon=True).start()
    return stop.set
