"""The approvals sweeper, as the jobs Lambda registers it (``lambdas/jobs/handler.py``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from aws_lambda_powertools.metrics import MetricUnit

from lambdas.approvals import service
from lambdas.approvals.repository import ApprovalSweepUnitOfWork, backlog
from lambdas.shared.constants import (
    APPROVAL_OLDEST_PENDING_AGE_METRIC,
    APPROVALS_ESCALATED_METRIC,
    APPROVALS_EXPIRED_METRIC,
    APPROVALS_PENDING_METRIC,
)
from lambdas.shared.observability import metrics
from lambdas.shared.scope import RequestScope


def sweep_approvals_job(scope: Callable[[], RequestScope]) -> Callable[[], int]:
    """``sweep_approvals``: expire and escalate due requests in every tenant (each change
    notified, audited in its tenant's chain and announced in its outbox), then report the
    backlog left: pending count and the oldest pending request's age (the alarm's metric)."""

    def run() -> int:
        with scope() as run_scope:
            changed = service.sweep(lambda: ApprovalSweepUnitOfWork(run_scope, None))
        with scope() as run_scope, ApprovalSweepUnitOfWork(run_scope, None) as uow:
            pending, oldest = backlog(uow.conn)
        expired = sum(1 for change in changed if change.change == "expired")
        metrics.add_metric(name=APPROVALS_EXPIRED_METRIC, unit=MetricUnit.Count, value=expired)
        metrics.add_metric(
            name=APPROVALS_ESCALATED_METRIC, unit=MetricUnit.Count, value=len(changed) - expired
        )
        metrics.add_metric(name=APPROVALS_PENDING_METRIC, unit=MetricUnit.Count, value=pending)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        metrics.add_metric(
            name=APPROVAL_OLDEST_PENDING_AGE_METRIC, unit=MetricUnit.Seconds, value=age
        )
        return len(changed)

    return run
