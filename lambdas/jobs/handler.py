"""The scheduled-jobs Lambda: EventBridge rules invoke it with ``{"job": "<name>"}``.

Jobs run as the runtime role (RLS applies) under a DynamoDB lease per job and environment.
"""

from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from collections.abc import Mapping
    from typing import Any

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.approvals.jobs import sweep_approvals_job
    from lambdas.audit.jobs import anchor_audit_heads_job
    from lambdas.billing.repository import BillingUnitOfWork
    from lambdas.billing.services.trials import expire_trials
    from lambdas.chat.jobs import index_chat_embeddings_job, release_chat_reservations_job
    from lambdas.jobs.service import Job, JobReport, UnknownJob, run_job
    from lambdas.leads.deadlines import dsr_deadlines_job
    from lambdas.leads.jobs import (
        count_lead_search_keys_job,
        purge_deleted_leads_job,
        rollup_leads_metrics_job,
    )
    from lambdas.shared.locks import DynamoLease
    from lambdas.shared.observability import logger, metrics, tracer
    from lambdas.shared.runtime import Runtime, get_runtime
    from lambdas.shared.scope import RequestScope

LEASE_S = 300


def _jobs(runtime: Runtime, request_id: str) -> Mapping[str, Job]:
    def scope() -> RequestScope:
        # each run is a request of its own: a transaction, its writers, no caller
        return runtime.request_scope(request_id=request_id, read_only=False, actor_type="system")

    def expire() -> int:
        with scope() as run:
            return expire_trials(lambda: BillingUnitOfWork(run, None))

    return {
        "expire_trials": expire,
        "anchor_audit_heads": anchor_audit_heads_job(runtime, scope),
        "sweep_approvals": sweep_approvals_job(scope),
        "leads_dsr_deadlines": dsr_deadlines_job(scope),
        "rollup_leads_metrics": rollup_leads_metrics_job(scope),
        "purge_deleted_leads": purge_deleted_leads_job(scope),
        "count_lead_search_keys": count_lead_search_keys_job(scope),
        "release_chat_reservations": release_chat_reservations_job(scope),
        "index_chat_embeddings": index_chat_embeddings_job(scope),
    }


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime = get_runtime()
    settings = runtime.job_settings
    name = str(event.get("job", ""))

    def lease(job: str) -> DynamoLease:
        return DynamoLease(
            runtime.dynamodb,
            table=settings.locks_table,
            lock_id=f"jobs:{job}:{settings.environment}",
            owner=f"{context.function_name}/{context.aws_request_id}",
            lease_s=LEASE_S,
            wait_s=0,
        )

    try:
        report = run_job(name, _jobs(runtime, context.aws_request_id), lease)
    except UnknownJob as exc:
        report = JobReport(job=name, ok=False, error=str(exc))
    if report.ok and not report.skipped:
        metrics.add_metric(name=f"{name}_affected", unit="Count", value=report.affected)
    return report.model_dump()
