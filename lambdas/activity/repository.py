"""The activity feed in DynamoDB: one partition per tenant, items sorted by when the event
happened. An item's key is derived from its event (``<occurred_at>#<event_id>``), so the item is
its own inbox marker: a conditional put applies a redelivered event zero more times."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from lambdas.activity.models import ActivityItem, EventAggregate, EventEnvelope

_BATCH_WRITE = 25
_WRITE_ATTEMPTS = 8


def sort_key(envelope: EventEnvelope) -> str:
    """Fixed-width UTC time, so that string order is time order."""
    return f"{envelope.occurred_at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{envelope.event_id}"


def _item(tenant_id: UUID, envelope: EventEnvelope) -> dict[str, Any]:
    return {
        "tenant_id": {"S": str(tenant_id)},
        "sk": {"S": sort_key(envelope)},
        "event_id": {"S": str(envelope.event_id)},
        "event_type": {"S": envelope.event_type},
        "version": {"N": str(envelope.version)},
        "aggregate_type": {"S": envelope.aggregate.type},
        "aggregate_id": {"S": envelope.aggregate.id},
        "seq": {"N": str(envelope.aggregate.seq)},
        "occurred_at": {"S": envelope.occurred_at.isoformat()},
        "payload": {"S": json.dumps(envelope.payload, sort_keys=True, separators=(",", ":"))},
    }


def _activity(item: dict[str, Any]) -> ActivityItem:
    return ActivityItem(
        event_id=UUID(item["event_id"]["S"]),
        type=item["event_type"]["S"],
        version=int(item["version"]["N"]),
        aggregate=EventAggregate(
            type=item["aggregate_type"]["S"],
            id=item["aggregate_id"]["S"],
            seq=int(item["seq"]["N"]),
        ),
        occurred_at=item["occurred_at"]["S"],
        data=json.loads(item["payload"]["S"]),
    )


class ActivityFeedRepository:
    def __init__(self, client: Any, *, table: str) -> None:
        self._client = client
        self._table = table

    def record(self, tenant_id: UUID, envelope: EventEnvelope) -> bool:
        """Put the event's item unless it is there already; True if this call added it."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_item(tenant_id, envelope),
                ConditionExpression="attribute_not_exists(sk)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def page(
        self, tenant_id: UUID, *, before: str | None, limit: int
    ) -> tuple[list[ActivityItem], str | None]:
        """Up to ``limit`` items of the tenant, newest first, older than the sort key
        ``before``; and the sort key of the last item if more may follow."""
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "tenant_id = :tenant",
            "ExpressionAttributeValues": {":tenant": {"S": str(tenant_id)}},
            "ScanIndexForward": False,
            "Limit": limit + 1,
        }
        if before:
            query["ExclusiveStartKey"] = {"tenant_id": {"S": str(tenant_id)}, "sk": {"S": before}}
        items = self._client.query(**query).get("Items", [])
        has_more = len(items) > limit
        items = items[:limit]
        last = items[-1]["sk"]["S"] if has_more and items else None
        return [_activity(item) for item in items], last

    def keys(self, tenant_id: UUID | None) -> Iterator[dict[str, Any]]:
        """Every item key of one tenant (a query) or of the whole table (a scan)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "ProjectionExpression": "tenant_id, sk",
        }
        if tenant_id is not None:
            request["KeyConditionExpression"] = "tenant_id = :tenant"
            request["ExpressionAttributeValues"] = {":tenant": {"S": str(tenant_id)}}
        operation = "query" if tenant_id is not None else "scan"
        paginator = self._client.get_paginator(operation)
        for page in paginator.paginate(**request):
            yield from page.get("Items", [])

    def items(self, tenant_id: UUID) -> list[ActivityItem]:
        """The tenant's whole feed, newest first."""
        found: list[ActivityItem] = []
        before: str | None = None
        while True:
            page, before = self.page(tenant_id, before=before, limit=500)
            found += page
            if before is None:
                return found

    def clear(self, tenant_id: UUID | None) -> int:
        """Delete the tenant's feed (or every feed); returns how many items went."""
        deleted = 0
        batch: list[dict[str, Any]] = []
        for key in self.keys(tenant_id):
            batch.append({"DeleteRequest": {"Key": key}})
            if len(batch) == _BATCH_WRITE:
                deleted += self._write(batch)
                batch = []
        if batch:
            deleted += self._write(batch)
        return deleted

    def _write(self, requests: list[dict[str, Any]]) -> int:
        pending = {self._table: requests}
        for attempt in range(_WRITE_ATTEMPTS):
            response = self._client.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return len(requests)
            time.sleep(0.05 * 2**attempt)  # throttled: back off before the rest
        raise RuntimeError(f"DynamoDB left items unprocessed after {_WRITE_ATTEMPTS} attempts")
