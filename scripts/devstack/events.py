"""The outbox's AWS side on moto: the bus, the activity rule -> SQS queue (with a DLQ), the
activity table; and what Lambda's SQS event source mapping does, for the ``make dev`` timer."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

import boto3

from lambdas.shared.constants import OUTBOX_EVENT_SOURCE, ResourceNames

# The same numbers as the stack's queue (stacks/events.py).
MAX_RECEIVE_COUNT = 5
SQS_BATCH_SIZE = 10

SqsHandler = Callable[[dict[str, Any]], dict[str, Any]]


def activity_rule_pattern() -> dict[str, Any]:
    return {"source": [OUTBOX_EVENT_SOURCE]}


def _ensure_activity_table(client: Any, name: str) -> None:
    try:
        client.create_table(
            TableName=name,
            AttributeDefinitions=[
                {"AttributeName": "tenant_id", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "tenant_id", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except client.exceptions.ResourceInUseException:
        return


def provision_events(names: ResourceNames) -> str:
    """Bus, rule, queue + DLQ and the activity table (idempotent); returns the queue URL."""
    _ensure_activity_table(boto3.client("dynamodb"), names.activity_table)
    events = boto3.client("events")
    sqs = boto3.client("sqs")
    with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
        events.create_event_bus(Name=names.event_bus)
    dlq_url = sqs.create_queue(QueueName=f"{names.activity_queue}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})
    queue_url = sqs.create_queue(
        QueueName=names.activity_queue,
        Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": "30"},
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    rule = f"{names.prefix}-activity"
    events.put_rule(
        Name=rule, EventBusName=names.event_bus, EventPattern=json.dumps(activity_rule_pattern())
    )
    events.put_targets(
        Rule=rule, EventBusName=names.event_bus, Targets=[{"Id": "activity", "Arn": queue_arn}]
    )
    return str(queue_url)


def sqs_lambda_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping hands the function."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for message in messages
        ]
    }


def drain_queue(queue_url: str, handler: SqsHandler, *, max_batches: int = 100) -> int:
    """Receive batches and hand them to ``handler`` as the event source mapping would:
    delete what it processed, leave its ``batchItemFailures`` for redelivery (and, after
    ``MAX_RECEIVE_COUNT`` receives, the DLQ). Returns how many messages were processed."""
    sqs = boto3.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    processed = 0
    for _ in range(max_batches):
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=SQS_BATCH_SIZE, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            break
        result = handler(sqs_lambda_event(messages, queue_arn))
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(uuid.uuid4()), "ReceiptHandle": m["ReceiptHandle"]} for m in done
                ],
            )
        processed += len(done)
        if failed:
            break  # leave the failures to their visibility timeout, as Lambda does
    return processed


def relay_and_deliver(names: ResourceNames, context_factory: Callable[[str], Any]) -> str:
    """One tick of what AWS does on its own: the relay's schedule fires, then the activity
    queue's event source mapping hands the consumer what the rule delivered."""
    from lambdas.activity.consumer import lambda_handler as consume  # noqa: PLC0415
    from lambdas.outbox.handler import lambda_handler as relay  # noqa: PLC0415

    report = relay({}, context_factory("outbox-relay"))
    queue_url = boto3.client("sqs").get_queue_url(QueueName=names.activity_queue)["QueueUrl"]
    applied = drain_queue(queue_url, lambda event: consume(event, context_factory("activity")))
    return f"published {report['published']}, dead {report['dead']}, delivered {applied}"


def start_outbox_timer(
    lock: threading.Lock,
    names: ResourceNames,
    context_factory: Callable[[str], Any],
    *,
    interval_s: float,
) -> Callable[[], None]:
    """Run ``relay_and_deliver`` every ``interval_s`` under the gateway's invocation lock (the
    handlers share one database connection); returns what stops it (and waits for a tick)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            with lock:
                try:
                    line = relay_and_deliver(names, context_factory)
                except Exception as exc:  # reported; the next tick may pass
                    line = f"failed: {type(exc).__name__}: {exc}"
            if not line.startswith("published 0, dead 0, delivered 0"):
                print(f"• outbox: {line}", flush=True)

    thread = threading.Thread(target=loop, name="dev-outbox", daemon=True)
    thread.start()

    def stop_and_wait() -> None:
        stop.set()
        thread.join(timeout=60)  # let a tick in progress finish before its resources go

    return stop_and_wait
