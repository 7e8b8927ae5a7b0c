"""The outbox relay Lambda, invoked by an EventBridge schedule (locally: the ``make dev`` timer).

It runs as the runtime role with no tenant in scope; the relay functions of migration 025 are
its only view of other tenants' events. Reserved concurrency 1 keeps one relay per environment
on AWS, and ``FOR UPDATE SKIP LOCKED`` keeps two of them (a manual run, a redelivered schedule)
from claiming the same event.
"""

from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from datetime import UTC, datetime
    from typing import Any

    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.outbox import service
    from lambdas.outbox.models import OutboxStats, RelayReport
    from lambdas.outbox.publisher import EventBridgePublisher
    from lambdas.outbox.repository import OutboxUnitOfWork
    from lambdas.shared.observability import logger, metrics, tracer
    from lambdas.shared.runtime import get_runtime

# Leave this much of the invocation for the last batch's publish and mark.
SAFETY_MARGIN_S = 15.0


def record_metrics(report: RelayReport, stats: OutboxStats, *, now: datetime) -> None:
    """EMF metrics the alarms of stacks/events.py watch."""
    oldest = (now - stats.oldest_pending_at).total_seconds() if stats.oldest_pending_at else 0
    metrics.add_metric(name="OutboxPublished", unit=MetricUnit.Count, value=report.published)
    metrics.add_metric(name="OutboxRetried", unit=MetricUnit.Count, value=report.retried)
    metrics.add_metric(name="OutboxDeadNew", unit=MetricUnit.Count, value=report.dead)
    metrics.add_metric(name="OutboxDead", unit=MetricUnit.Count, value=stats.dead)
    metrics.add_metric(name="OutboxPending", unit=MetricUnit.Count, value=stats.pending)
    metrics.add_metric(
        name="OutboxOldestPendingAge", unit=MetricUnit.Seconds, value=max(0.0, oldest)
    )


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime = get_runtime()
    settings = runtime.outbox_relay_settings
    budget_s = max(1.0, context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_S)
    publisher = EventBridgePublisher(runtime.eventbridge, bus_name=settings.event_bus_name)
    options = service.RelayOptions(
        batch_size=settings.outbox_batch_size,
        claim_s=settings.outbox_claim_s,
        max_attempts=settings.outbox_max_attempts,
        time_budget_s=budget_s,
    )
    with runtime.request_scope(
        request_id=context.aws_request_id, read_only=False, actor_type="system"
    ) as scope:

        def uow() -> OutboxUnitOfWork:
            return OutboxUnitOfWork(scope, None)

        report = service.relay(uow, publisher, options)
        stats = service.stats(uow)
    record_metrics(report, stats, now=datetime.now(UTC))
    summary = {**report.model_dump(), **stats.model_dump(mode="json")}
    if report.claimed or report.reset_expired or stats.pending or stats.dead:
        logger.info("outbox relay done", extra=summary)
    else:  # an idle run (every 2 s under `make dev`) is not news
        logger.debug("outbox relay done", extra=summary)
    return {**report.model_dump(), "backlog": stats.model_dump(mode="json")}
