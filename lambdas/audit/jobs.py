"""The anchoring job, as the jobs Lambda registers it (``lambdas/jobs/handler.py``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import boto3
from aws_lambda_powertools.metrics import MetricUnit

from lambdas.audit import service
from lambdas.audit.anchors import S3AnchorStore, anchor_age_s
from lambdas.audit.repository import AuditUnitOfWork
from lambdas.shared.constants import AUDIT_ANCHOR_AGE_METRIC
from lambdas.shared.observability import metrics
from lambdas.shared.runtime import Runtime
from lambdas.shared.scope import RequestScope


class AnchorBucketMissing(RuntimeError):
    pass


def anchor_audit_heads_job(
    runtime: Runtime, scope: Callable[[], RequestScope]
) -> Callable[[], int]:
    """``anchor_audit_heads``: write every tenant's chain head to the Object Lock bucket.
    Records the age the previous anchor had reached (the alarm fires when it grows)."""

    def run() -> int:
        settings = runtime.job_settings
        if not settings.audit_anchor_bucket:
            raise AnchorBucketMissing("AUDIT_ANCHOR_BUCKET is not set")
        store = S3AnchorStore(
            boto3.client("s3"),
            bucket=settings.audit_anchor_bucket,
            retention_days=settings.audit_anchor_retention_days,
        )
        age = anchor_age_s(store.latest(), datetime.now(UTC))
        if age is not None:
            metrics.add_metric(name=AUDIT_ANCHOR_AGE_METRIC, unit=MetricUnit.Seconds, value=age)
        with scope() as run:
            report = service.anchor_audit_heads(lambda: AuditUnitOfWork(run, None), store)
        return report.tenants

    return run
