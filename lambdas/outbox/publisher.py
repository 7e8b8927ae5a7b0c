"""Publishing outbox events to an EventBridge bus with ``PutEvents``.

At most 10 entries and 256 KiB per request (EventBridge's limits). A request that fails as a
whole fails each of its entries; a request that succeeds may still fail some entries, reported
one by one in ``Entries[i].ErrorCode`` in request order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.outbox.decisions import MAX_ENTRY_BYTES
from lambdas.outbox.models import OutboxEvent
from lambdas.shared.constants import OUTBOX_EVENT_SOURCE

MAX_ENTRIES_PER_REQUEST: Final = 10
MAX_REQUEST_BYTES: Final = 256 * 1024


@dataclass(frozen=True)
class PublishError:
    event_id: str
    code: str
    message: str


class Publisher(Protocol):
    def publish(self, events: Sequence[OutboxEvent]) -> list[PublishError]:
        """Publish ``events``; returns the ones that failed (every other one was accepted)."""
        ...


def _entry(event: OutboxEvent, bus_name: str) -> dict[str, Any]:
    return {
        "Source": OUTBOX_EVENT_SOURCE,
        "DetailType": event.event_type,
        "Detail": json.dumps(event.detail(), separators=(",", ":")),
        "EventBusName": bus_name,
        "Time": event.created_at,
    }


def _entry_size(entry: dict[str, Any]) -> int:
    # EventBridge counts Source, DetailType, Detail and 14 bytes for Time.
    return len(entry["Source"]) + len(entry["DetailType"]) + len(entry["Detail"].encode()) + 14


def batches(
    entries: Sequence[tuple[OutboxEvent, dict[str, Any]]],
) -> Iterator[list[tuple[OutboxEvent, dict[str, Any]]]]:
    """Requests of at most 10 entries and 256 KiB each, in order."""
    batch: list[tuple[OutboxEvent, dict[str, Any]]] = []
    size = 0
    for item in entries:
        item_size = _entry_size(item[1])
        if batch and (
            len(batch) == MAX_ENTRIES_PER_REQUEST or size + item_size > MAX_REQUEST_BYTES
        ):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        yield batch


class EventBridgePublisher:
    def __init__(self, client: Any, *, bus_name: str) -> None:
        self._client = client
        self._bus_name = bus_name

    def publish(self, events: Sequence[OutboxEvent]) -> list[PublishError]:
        errors: list[PublishError] = []
        sendable: list[tuple[OutboxEvent, dict[str, Any]]] = []
        for event in events:
            entry = _entry(event, self._bus_name)
            if _entry_size(entry) > MAX_ENTRY_BYTES:
                errors.append(PublishError(str(event.id), "EntryTooLarge", "event exceeds 256 KiB"))
            else:
                sendable.append((event, entry))
        for batch in batches(sendable):
            errors.extend(self._put(batch))
        return errors

    def _put(self, batch: list[tuple[OutboxEvent, dict[str, Any]]]) -> list[PublishError]:
        try:
            response = self._client.put_events(Entries=[entry for _, entry in batch])
        except (ClientError, BotoCoreError) as error:
            code = (
                error.response.get("Error", {}).get("Code", "ClientError")
                if isinstance(error, ClientError)
                else type(error).__name__
            )
            return [PublishError(str(event.id), code, str(error)[:500]) for event, _ in batch]
        results = response.get("Entries", [])
        if not response.get("FailedEntryCount") and len(results) == len(batch):
            return []
        # An entry without a result was not confirmed: publish it again rather than lose it.
        results = [*results, *({"ErrorCode": "NoResult"} for _ in batch[len(results) :])]
        errors = []
        for (event, _), result in zip(batch, results, strict=False):
            if result.get("ErrorCode"):
                errors.append(
                    PublishError(
                        str(event.id), str(result["ErrorCode"]), str(result.get("ErrorMessage", ""))
                    )
                )
        return errors
