"""The local stack's stand-in for S3 notifications (moto sends none): each bucket the stacks
notify is polled with the stacks' filter, and a new object invokes its function once."""

from __future__ import annotations

from typing import Any

import boto3

from lambdas.shared.constants import resource_names
from scripts.devstack.ingestion_poller import IngestionPoller, notified_buckets
from stacks.knowledge import INGEST_HANDLER
from stacks.lead_imports import IMPORT_HANDLER, IMPORT_PREFIX


def test_the_local_stack_notifies_the_buckets_the_stacks_notify_with_their_filters() -> None:
    names = resource_names("dev")

    by_handler = {notified.handler: notified for notified in notified_buckets(names)}

    assert set(by_handler) == {INGEST_HANDLER, IMPORT_HANDLER}
    imports = by_handler[IMPORT_HANDLER]
    assert (imports.bucket, imports.prefix, imports.suffix) == (
        names.leads_imports_bucket,
        IMPORT_PREFIX,
        ".csv",
    )
    assert by_handler[INGEST_HANDLER].bucket == names.documents_bucket


def test_a_new_csv_under_the_prefix_invokes_the_import_once_and_nothing_else_does(
    aws: None,
) -> None:
    # Given the imports bucket with an upload, a file of another kind and one outside the prefix
    (imports,) = [n for n in notified_buckets(resource_names("dev")) if n.label == "leads-import"]
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=imports.bucket)
    for key in ("imports/t/a.csv", "imports/t/a.txt", "elsewhere/b.csv"):
        s3.put_object(Bucket=imports.bucket, Key=key, Body=b"full_name\nAna\n")
    events: list[dict[str, Any]] = []
    poller = IngestionPoller(
        imports.bucket, events.append, prefix=imports.prefix, suffix=imports.suffix
    )

    # When it polls twice, then the upload is replaced
    poller.poll_once()
    poller.poll_once()
    s3.put_object(Bucket=imports.bucket, Key="imports/t/a.csv", Body=b"full_name\nBia\n")
    poller.poll_once()

    # Then only the CSV under imports/ was notified: once, and again when its content changed
    notified = [event["Records"][0]["s3"] for event in events]
    assert [(s["bucket"]["name"], s["object"]["key"]) for s in notified] == [
        (imports.bucket, "imports/t/a.csv")
    ] * 2
    assert notified[0]["object"]["size"] == len(b"full_name\nAna\n")
