"""The activity projection's consumer: an SQS event source (the queue an EventBridge rule fills
from the bus) whose messages are EventBridge events carrying outbox events in ``detail``.

Each message is applied on its own; a failed one is reported back (``batchItemFailures``) so SQS
redelivers only it, and after the queue's maxReceiveCount it moves to the dead-letter queue.
Redelivery is harmless: applying an event is idempotent on its event id.
"""

from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    import json
    from typing import Any

    from aws_lambda_powertools.metrics import MetricUnit
    from aws_lambda_powertools.utilities.batch import (
        BatchProcessor,
        EventType,
        process_partial_response,
    )
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.activity import service
    from lambdas.activity.models import EventEnvelope
    from lambdas.activity.repository import ActivityFeedRepository
    from lambdas.shared.observability import logger, metrics, tracer
    from lambdas.shared.runtime import get_runtime


def envelope_of(body: str) -> EventEnvelope:
    """The outbox event inside an SQS message body holding an EventBridge event."""
    return EventEnvelope.model_validate(json.loads(body)["detail"])


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime = get_runtime()
    feed = ActivityFeedRepository(
        runtime.dynamodb, table=runtime.activity_consumer_settings.activity_table
    )
    applied = 0

    def handle(record: SQSRecord) -> None:
        nonlocal applied
        applied += service.project(feed, envelope_of(record.body))

    processor = BatchProcessor(event_type=EventType.SQS)
    response = process_partial_response(
        event=event, record_handler=handle, processor=processor, context=context
    )
    metrics.add_metric(name="ActivityApplied", unit=MetricUnit.Count, value=applied)
    return dict(response)
