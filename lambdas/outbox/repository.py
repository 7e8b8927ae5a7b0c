"""The relay's SQL: the versioned SECURITY DEFINER functions of migration 025, called as the
runtime role with no tenant in scope (the functions are the relay's only cross-tenant path)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from lambdas.outbox.decisions import Failure
from lambdas.outbox.models import OutboxEvent, OutboxStats
from lambdas.shared.db import Connection, UnitOfWork


def _event(row: dict[str, Any]) -> OutboxEvent:
    # The row comes typed from the outbox functions' declared columns: no need to validate it
    # again (half of the relay's own CPU per event went to validation).
    return OutboxEvent.model_construct(**row)


class OutboxRelayRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def claim(self, *, limit: int, claim_s: int) -> list[OutboxEvent]:
        """Up to ``limit`` due events, inflight for ``claim_s`` seconds, oldest first; at most
        the next unpublished event of each aggregate."""
        rows = self._conn.execute(
            "SELECT * FROM alquimista_platform.outbox_claim_v1(%s, %s)", (limit, claim_s)
        ).fetchall()
        return sorted((_event(row) for row in rows), key=lambda e: (e.created_at, str(e.id)))

    def mark_published(self, event_ids: Sequence[UUID]) -> int:
        row = self._conn.execute(
            "SELECT alquimista_platform.outbox_mark_published_v1(%s) AS marked",
            (list(event_ids),),
        ).fetchone()
        return int(row["marked"]) if row else 0

    def mark_failed(self, failures: Sequence[Failure]) -> int:
        row = self._conn.execute(
            """
            SELECT alquimista_platform.outbox_mark_failed_v1(
                %s::uuid[], %s::text[], %s::float8[], %s::boolean[]) AS marked
            """,
            (
                [f.event_id for f in failures],
                [f.error for f in failures],
                [f.retry_after_s for f in failures],
                [f.dead for f in failures],
            ),
        ).fetchone()
        return int(row["marked"]) if row else 0

    def reset_expired(self, *, max_attempts: int) -> tuple[int, int]:
        """(claims reset to pending, claims that used up their attempts and are now dead)."""
        row = self._conn.execute(
            "SELECT * FROM alquimista_platform.outbox_reset_expired_v1(%s)", (max_attempts,)
        ).fetchone()
        return (int(row["reset"]), int(row["dead"])) if row else (0, 0)

    def stats(self) -> OutboxStats:
        row = self._conn.execute("SELECT * FROM alquimista_platform.outbox_stats_v1()").fetchone()
        return OutboxStats.model_validate(row)

    def published_after(
        self,
        *,
        tenant_id: UUID | None,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[OutboxEvent]:
        """Published events in emission order after ``after`` (for replays)."""
        rows = self._conn.execute(
            "SELECT * FROM alquimista_platform.outbox_published_v1(%s, %s, %s, %s)",
            (tenant_id, after[0] if after else None, after[1] if after else None, limit),
        ).fetchall()
        return [_event(row) for row in rows]

    def count_published(self, *, tenant_id: UUID | None) -> int:
        row = self._conn.execute(
            """
            SELECT count(*) AS events
            FROM alquimista_platform.outbox_published_v1(%s, NULL, NULL, NULL)
            """,
            (tenant_id,),
        ).fetchone()
        return int(row["events"]) if row else 0


class OutboxUnitOfWork(UnitOfWork):
    """A transaction scoped to no tenant, for the relay and the replay tools."""

    relay: OutboxRelayRepository

    def _on_enter(self) -> None:
        self.relay = OutboxRelayRepository(self.conn)
