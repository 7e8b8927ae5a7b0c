"""Emitting domain events: one outbox row per event, in the caller's transaction.

The request scope builds one ``OutboxWriter`` over the request's connection; a rollback removes
the events with the change they announce. The relay (lambdas/outbox) publishes them later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID, uuid4

from psycopg.types.json import Jsonb

from lambdas.shared.constants import PLATFORM_TENANT
from lambdas.shared.db import Connection
from lambdas.shared.events import validated_payload
from lambdas.shared.scope import EventDraft

# The tenant of platform events (emitted by a transaction scoped to no tenant).

_APPEND_SQL = """
    SELECT alquimista_platform.outbox_append_v1(%s, %s, %s, %s, %s, %s, %s) AS seq
"""
_APPEND_MANY_SQL = """
    SELECT count(*) AS appended FROM alquimista_platform.outbox_append_many_v1(
        %s::uuid[], %s, %s::text[], %s::text[], %s::text[], %s::integer[], %s)
"""


class OutboxWriter:
    """Appends validated events to ``alquimista_platform.domain_outbox`` over ``conn``.

    ``tenant_id`` must be the tenant the transaction is scoped to (None: no tenant); PostgreSQL
    refuses an event for any other tenant.
    """

    def __init__(self, conn: Connection, *, tenant_id: UUID | None) -> None:
        self._conn = conn
        self._tenant_id = tenant_id or PLATFORM_TENANT
        self.emitted: list[UUID] = []

    def emit(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> UUID:
        """Append one event; returns its id (the id consumers deduplicate by)."""
        data = validated_payload(event_type, version, aggregate_type, payload)
        event_id = uuid4()
        self._conn.execute(
            _APPEND_SQL,
            (
                event_id,
                self._tenant_id,
                aggregate_type,
                str(aggregate_id),
                event_type,
                version,
                Jsonb(data),
            ),
        )
        self.emitted.append(event_id)
        return event_id

    def emit_many(self, events: Sequence[EventDraft]) -> list[UUID]:
        """Append several events in one statement (``outbox_append_many_v1``, migration 059): a
        batch's thousand events in one call instead of a thousand. Validated like ``emit``;
        their order, and so each aggregate's seq order, is the sequence's."""
        ids = [uuid4() for _ in events]
        if ids:
            self._conn.execute(
                _APPEND_MANY_SQL,
                (
                    ids,
                    self._tenant_id,
                    [event.aggregate_type for event in events],
                    [str(event.aggregate_id) for event in events],
                    [event.event_type for event in events],
                    [event.version for event in events],
                    Jsonb(
                        [
                            validated_payload(
                                event.event_type,
                                event.version,
                                event.aggregate_type,
                                event.payload,
                            )
                            for event in events
                        ]
                    ),
                ),
            )
        self.emitted.extend(ids)
        return ids
