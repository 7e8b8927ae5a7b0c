"""Emitting domain events: one outbox row per event, in the caller's transaction.

The request scope builds one ``OutboxWriter`` over the request's connection; a rollback removes
the events with the change they announce. The relay (lambdas/outbox) publishes them later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID, uuid4

from psycopg.types.json import Jsonb

from lambdas.shared.constants import PLATFORM_TENANT
from lambdas.shared.db import Connection
from lambdas.shared.events import validated_payload

# The tenant of platform events (emitted by a transaction scoped to no tenant).

_APPEND_SQL = """
    SELECT alquimista_platform.outbox_append_v1(%s, %s, %s, %s, %s, %s, %s) AS seq
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
