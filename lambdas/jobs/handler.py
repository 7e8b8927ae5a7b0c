"""The scheduled-jobs Lambda: EventBridge rules invoke it with ``{"job": "<name>"}``.

Jobs run as the runtime role (RLS applies) under a DynamoDB lease per job and environment.
"""

from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from collections.abc import Mapping
    from typing import Any

    import boto3
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.billing.repository import BillingUnitOfWork
    from lambdas.billing.services.trials import expire_trials
    from lambdas.jobs.service import Job, JobReport, UnknownJob, run_job
    from lambdas.shared.http import get_database
    from lambdas.shared.locks import DynamoLease
    from lambdas.shared.observability import logger, metrics, tracer
    from lambdas.shared.settings import get_job_settings

LEASE_S = 300


def _jobs() -> Mapping[str, Job]:
    database = get_database()
    return {"expire_trials": lambda: expire_trials(lambda: BillingUnitOfWork(database, None))}


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_job_settings()
    name = str(event.get("job", ""))

    def lease(job: str) -> DynamoLease:
        return DynamoLease(
            boto3.client("dynamodb"),
            table=settings.locks_table,
            lock_id=f"jobs:{job}:{settings.environment}",
            owner=f"{context.function_name}/{context.aws_request_id}",
            lease_s=LEASE_S,
            wait_s=0,
        )

    try:
        report = run_job(name, _jobs(), lease)
    except UnknownJob as exc:
        report = JobReport(job=name, ok=False, error=str(exc))
    if report.ok and not report.skipped:
        metrics.add_metric(name=f"{name}_affected", unit="Count", value=report.affected)
    return report.model_dump()
