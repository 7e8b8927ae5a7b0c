from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from lambdas.outbox.models import OutboxEvent
from lambdas.outbox.publisher import EventBridgePublisher, batches
from lambdas.shared.constants import PLATFORM_TENANT


def _event(payload: dict[str, Any] | None = None, tenant: uuid.UUID | None = None) -> OutboxEvent:
    return OutboxEvent(
        id=uuid.uuid4(),
        tenant_id=tenant or uuid.uuid4(),
        aggregate_type="agent",
        aggregate_id="a-1",
        seq=1,
        event_type="agent.deactivated",
        payload_version=1,
        payload=payload or {"agent_id": str(uuid.uuid4())},
        attempts=1,
        created_at=datetime.now(UTC),
    )


class RecordingClient:
    """EventBridge's PutEvents at the boundary, failing what ``fail`` names."""

    def __init__(self, fail: dict[int, str] | None = None, error: Exception | None = None):
        self.requests: list[list[dict[str, Any]]] = []
        self._fail = fail or {}
        self._error = error

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        if self._error:
            raise self._error
        self.requests.append(Entries)
        offset = sum(len(r) for r in self.requests[:-1])
        results = []
        for index, _ in enumerate(Entries):
            code = self._fail.get(offset + index)
            results.append({"ErrorCode": code, "ErrorMessage": "no"} if code else {"EventId": "x"})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def test_requests_carry_at_most_ten_entries_in_order() -> None:
    events = [_event() for _ in range(23)]
    client = RecordingClient()

    errors = EventBridgePublisher(client, bus_name="bus").publish(events)

    assert errors == []
    assert [len(r) for r in client.requests] == [10, 10, 3]
    sent = [json.loads(e["Detail"])["event_id"] for r in client.requests for e in r]
    assert sent == [str(e.id) for e in events]


def test_requests_stay_under_256_kib() -> None:
    big = "x" * 100_000
    entries = [(_event(), {"Source": "s", "DetailType": "d", "Detail": big}) for _ in range(5)]

    sizes = [len(batch) for batch in batches(entries)]

    assert sizes == [2, 2, 1]


def test_failed_entries_are_reported_one_by_one() -> None:
    events = [_event() for _ in range(12)]
    client = RecordingClient(fail={1: "ThrottlingException", 11: "InternalFailure"})

    errors = EventBridgePublisher(client, bus_name="bus").publish(events)

    assert [(e.event_id, e.code) for e in errors] == [
        (str(events[1].id), "ThrottlingException"),
        (str(events[11].id), "InternalFailure"),
    ]


def test_a_failed_request_fails_each_of_its_entries() -> None:
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutEvents")
    events = [_event() for _ in range(3)]

    errors = EventBridgePublisher(RecordingClient(error=denied), bus_name="bus").publish(events)

    assert [e.code for e in errors] == ["AccessDeniedException"] * 3


def test_an_oversized_event_is_refused_before_sending() -> None:
    huge = _event({"agent_id": "x" * 300_000})
    client = RecordingClient()

    errors = EventBridgePublisher(client, bus_name="bus").publish([huge, _event()])

    assert [e.code for e in errors] == ["EntryTooLarge"]
    assert len(client.requests[0]) == 1


def test_the_detail_names_the_event_its_tenant_and_its_aggregate(aws: None) -> None:
    boto3.client("events").create_event_bus(Name="bus")
    platform = _event(tenant=PLATFORM_TENANT)
    tenant = _event()

    errors = EventBridgePublisher(boto3.client("events"), bus_name="bus").publish(
        [platform, tenant]
    )

    assert errors == []
    assert platform.detail()["tenant_id"] is None
    assert tenant.detail()["tenant_id"] == str(tenant.tenant_id)
    assert tenant.detail()["aggregate"] == {"type": "agent", "id": "a-1", "seq": 1}


def test_a_missing_bus_fails_every_entry(aws: None) -> None:
    errors = EventBridgePublisher(boto3.client("events"), bus_name="nope").publish([_event()])

    assert len(errors) == 1
    assert errors[0].code


@pytest.mark.parametrize("count", [0, 1])
def test_nothing_to_publish_sends_nothing(count: int) -> None:
    client = RecordingClient()

    EventBridgePublisher(client, bus_name="bus").publish([_event() for _ in range(count)])

    assert len(client.requests) == count


def test_an_entry_without_a_result_is_reported_failed() -> None:
    class Truncating(RecordingClient):
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
            response = super().put_events(Entries)
            return {"FailedEntryCount": 0, "Entries": response["Entries"][:-1]}

    events = [_event() for _ in range(3)]

    errors = EventBridgePublisher(Truncating(), bus_name="bus").publish(events)

    assert [(e.event_id, e.code) for e in errors] == [(str(events[2].id), "NoResult")]
