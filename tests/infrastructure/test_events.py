"""The outbox's AWS side: bus, relay schedule, activity rule -> queue (+DLQ) -> consumer, the
activity table, least-privilege grants, and the outbox alarms."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from lambdas.shared.constants import OUTBOX_EVENT_SOURCE, resource_names
from lambdas.shared.settings import ActivityConsumerSettings, ActivitySettings, OutboxRelaySettings
from stacks.events import CONSUMER_HANDLER, RELAY_HANDLER
from tests.infrastructure.conftest import Synthesis, as_list


def _function(synthesis: Synthesis, handler: str) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (name, fn["Properties"])
        for name, fn in synthesis.resources("AWS::Lambda::Function", "Api").items()
        if fn["Properties"].get("Handler") == handler
    ]
    return found


def _role_statements(synthesis: Synthesis, props: dict[str, Any]) -> list[dict[str, Any]]:
    role = {"Ref": props["Role"]["Fn::GetAtt"][0]}
    return [
        statement
        for policy in synthesis.resources("AWS::IAM::Policy", "Api").values()
        if role in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statements: list[dict[str, Any]], prefix: str) -> set[str]:
    return {a for s in statements for a in as_list(s["Action"]) if a.startswith(prefix)}


def _settle(variables: dict[str, Any]) -> dict[str, str]:
    """Environment values as a function sees them (tokens resolve to strings at deploy)."""
    return {k: v if isinstance(v, str) else "resolved-at-deploy" for k, v in variables.items()}


def _validates(settings: type[BaseModel], variables: dict[str, Any]) -> None:
    settings.model_validate(_settle(variables))


def test_the_bus_and_the_activity_rule_route_every_outbox_event_to_the_queue(
    synthesis: Synthesis,
) -> None:
    names = resource_names(synthesis.env)
    (bus,) = synthesis.resources("AWS::Events::EventBus", "Api").values()
    assert bus["Properties"]["Name"] == names.event_bus
    rules = [
        r["Properties"]
        for r in synthesis.resources("AWS::Events::Rule", "Api").values()
        if "EventPattern" in r["Properties"]
    ]
    (rule,) = rules
    assert rule["EventPattern"] == {"source": [OUTBOX_EVENT_SOURCE]}
    (target,) = rule["Targets"]
    assert "ActivityQueue" in json.dumps(target["Arn"])
    assert "ActivityDeadLetters" in json.dumps(target["DeadLetterConfig"])


def test_queues_are_encrypted_refuse_plain_http_and_redrive_to_the_dlq(
    synthesis: Synthesis,
) -> None:
    queues = synthesis.resources("AWS::SQS::Queue", "Api")
    assert len(queues) == 2
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    (main,) = [q["Properties"] for n, q in queues.items() if "ActivityQueue" in n]
    assert main["RedrivePolicy"]["maxReceiveCount"] == 5
    policies = synthesis.resources("AWS::SQS::QueuePolicy", "Api").values()
    denies = [
        s
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
    ]
    assert len(denies) == 2
    assert all(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def test_the_activity_table_is_keyed_by_tenant_on_demand_encrypted_with_pitr(
    synthesis: Synthesis,
) -> None:
    (table,) = [
        t["Properties"]
        for t in synthesis.resources("AWS::DynamoDB::Table", "Api").values()
        if t["Properties"]["TableName"] == resource_names(synthesis.env).activity_table
    ]
    assert table["KeySchema"] == [
        {"AttributeName": "tenant_id", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_the_relay_runs_every_minute_alone_and_may_only_put_events_on_the_bus(
    synthesis: Synthesis,
) -> None:
    name, relay = _function(synthesis, RELAY_HANDLER)
    schedules = [
        r["Properties"]
        for r in synthesis.resources("AWS::Events::Rule", "Api").values()
        if name in json.dumps(r["Properties"].get("Targets"))
    ]
    (schedule,) = schedules
    assert schedule["ScheduleExpression"] == "rate(1 minute)"
    assert relay["ReservedConcurrentExecutions"] == 1
    assert synthesis.function_subnet in json.dumps(relay["VpcConfig"]["SubnetIds"])
    _validates(OutboxRelaySettings, relay["Environment"]["Variables"])
    statements = _role_statements(synthesis, relay)
    assert _actions(statements, "events:") == {"events:PutEvents"}
    (put,) = [s for s in statements if "events:PutEvents" in as_list(s["Action"])]
    assert "Bus" in json.dumps(put["Resource"])
    assert _actions(statements, "dynamodb:") == set()
    endpoints = synthesis.resources("AWS::EC2::VPCEndpoint", "Api").values()
    names = [json.dumps(e["Properties"]["ServiceName"]) for e in endpoints]
    through_endpoint = any("events" in name for name in names)
    assert through_endpoint == synthesis.interface_endpoints


def test_the_consumer_reports_partial_batch_failures_and_only_puts_feed_items(
    synthesis: Synthesis,
) -> None:
    name, consumer = _function(synthesis, CONSUMER_HANDLER)
    (mapping,) = [
        m["Properties"]
        for m in synthesis.resources("AWS::Lambda::EventSourceMapping", "Api").values()
        if name in json.dumps(m["Properties"]["FunctionName"])
    ]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    assert "ActivityQueue" in json.dumps(mapping["EventSourceArn"])
    _validates(ActivityConsumerSettings, consumer["Environment"]["Variables"])
    statements = _role_statements(synthesis, consumer)
    assert _actions(statements, "dynamodb:") == {"dynamodb:PutItem"}
    assert "secretsmanager:GetSecretValue" not in _actions(statements, "secretsmanager:")


def test_the_activity_routes_read_the_feed_by_query_only(synthesis: Synthesis) -> None:
    _, activity = _function(synthesis, "lambdas.activity.handler.lambda_handler")

    _validates(ActivitySettings, activity["Environment"]["Variables"])
    statements = _role_statements(synthesis, activity)
    assert _actions(statements, "dynamodb:") == {"dynamodb:Query"}
    (query,) = [s for s in statements if "dynamodb:Query" in as_list(s["Action"])]
    assert "ActivityTable" in json.dumps(query["Resource"])


def test_outbox_alarms_watch_backlog_dead_events_failures_and_dead_letters(
    synthesis: Synthesis,
) -> None:
    alarms = synthesis.resources("AWS::CloudWatch::Alarm", "Monitoring")
    (topic_id,) = synthesis.resources("AWS::SNS::Topic", "Monitoring")
    by_name = {n: a["Properties"] for n, a in alarms.items()}
    for expected in (
        "OutboxBacklogAge",
        "OutboxDeadEvents",
        "OutboxPublishFailures",
        "ActivityDeadLetters",
        "OutboxErrors",
        "FeedErrors",
    ):
        (props,) = [p for n, p in by_name.items() if f"{expected}Alarm" in n]
        assert props["AlarmActions"] == [{"Ref": topic_id}], expected
    (backlog,) = [p for n, p in by_name.items() if "OutboxBacklogAge" in n]
    assert backlog["MetricName"] == "OutboxOldestPendingAge"
    assert backlog["TreatMissingData"] == "breaching"
    (dashboard,) = synthesis.resources("AWS::CloudWatch::Dashboard", "Monitoring").values()
    assert "OutboxOldestPendingAge" in json.dumps(dashboard["Properties"]["DashboardBody"])
