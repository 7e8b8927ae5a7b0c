"""The DSR deadline job, as the jobs Lambda registers it (``lambdas/jobs/handler.py``): how many
open data subject requests, across tenants, are due within the alarm's window (LGPD Art. 19
gives 15 days). The count, never a request or a person, is emitted as a metric."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.metrics import MetricUnit

from lambdas.shared.constants import DSR_ALARM_WINDOW_HOURS, DSR_DUE_SOON_METRIC
from lambdas.shared.db import Connection, UnitOfWork
from lambdas.shared.observability import metrics
from lambdas.shared.scope import RequestScope


class DeadlineRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def due_soon(self, *, hours: int) -> int:
        """Open requests of every tenant due within ``hours`` (or already late)."""
        row = self._conn.execute(
            "SELECT nigredo_leads.dsr_due_soon_v1(%s) AS n", (hours,)
        ).fetchone()
        return int(row["n"]) if row else 0


def dsr_deadlines_job(scope: Callable[[], RequestScope]) -> Callable[[], int]:
    """``leads_dsr_deadlines``: count the requests due soon and emit the count."""

    def run() -> int:
        with scope() as request, UnitOfWork(request, None) as uow:
            due = DeadlineRepository(uow.conn).due_soon(hours=DSR_ALARM_WINDOW_HOURS)
            uow.commit()
        metrics.add_metric(name=DSR_DUE_SOON_METRIC, unit=MetricUnit.Count, value=due)
        return due

    return run
