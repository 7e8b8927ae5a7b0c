"""SQL of the batched push for campaigns, interactions and meetings: the batch's rows read in one
statement per kind, and its writes sent as one multi-row statement per kind (the rows travel as
one JSON array read through the table's row type). The rules stay where the single-entity routes
keep them: the live-name unique index, the owner's no-overlap exclusion constraint, the version
and changes-feed triggers, an interaction or meeting only on a live lead of the tenant."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, LiteralString, TypeVar
from uuid import UUID

import psycopg
from psycopg.types.json import Json

from lambdas.leads.models import Campaign, Interaction, Meeting
from lambdas.leads.ports import BatchRefused
from lambdas.shared.db import Connection

R = TypeVar("R")

# a row of a write: the entity's id and the columns to write (JSON-ready values)
Row = dict[str, Any]


def _rows(rows: Sequence[Row]) -> Json:
    return Json(list(rows), dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


class PipelineBatchRepository:
    """The campaign, interaction and meeting reads and writes of one sync batch. Each write
    returns the rows written by id; an absent id was not written (see each method)."""

    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    # ---- reads --------------------------------------------------------------------------

    def _by_id(
        self, table: LiteralString, ids: Sequence[UUID], model: Callable[[Any], R], *, lock: bool
    ) -> dict[UUID, R]:
        if not ids:
            return {}
        rows = self._conn.execute(
            "SELECT * FROM "
            + table
            + " WHERE tenant_id = %s AND id = ANY(%s)"
            + (" ORDER BY id FOR UPDATE" if lock else ""),
            (self._tenant_id, list(ids)),
        ).fetchall()
        return {row["id"]: model(row) for row in rows}

    def campaigns(self, ids: Sequence[UUID], *, lock: bool = False) -> dict[UUID, Campaign]:
        """The tenant's campaigns with these ids, deleted ones included."""
        return self._by_id("nigredo_leads.campanhas", ids, Campaign.model_validate, lock=lock)

    def interactions(self, ids: Sequence[UUID]) -> dict[UUID, Interaction]:
        return self._by_id("nigredo_leads.interacoes", ids, Interaction.model_validate, lock=False)

    def meetings(self, ids: Sequence[UUID], *, lock: bool = False) -> dict[UUID, Meeting]:
        return self._by_id("nigredo_leads.agendamentos", ids, Meeting.model_validate, lock=lock)

    def campaign_name_owners(self, names: Sequence[str]) -> dict[str, Campaign]:
        """The live campaigns holding these names (the natural key of a campaign)."""
        if not names:
            return {}
        rows = self._conn.execute(
            """
            SELECT * FROM nigredo_leads.campanhas
            WHERE tenant_id = %s AND name = ANY(%s) AND deleted_at IS NULL
            ORDER BY id FOR UPDATE
            """,
            (self._tenant_id, list(names)),
        ).fetchall()
        return {row["name"]: Campaign.model_validate(row) for row in rows}

    # ---- campaigns ----------------------------------------------------------------------

    def create_campaigns(
        self, rows: Sequence[Row], *, user_id: UUID | None, skip_taken: bool = True
    ) -> dict[UUID, Campaign]:
        """Insert the campaigns; one whose id or live name is taken is skipped (``skip_taken``)
        or refuses the statement (BatchRefused)."""
        return self._insert(
            """
            INSERT INTO nigredo_leads.campanhas (
                id, tenant_id, name, description, channel, status, created_by)
            SELECT v.id, %(tenant)s, v.name, v.description, v.channel, v.status, %(user)s
            FROM json_populate_recordset(NULL::nigredo_leads.campanhas, %(rows)s)
                 WITH ORDINALITY AS v
            ORDER BY v.ordinality
            """,
            rows,
            Campaign.model_validate,
            skip_taken=skip_taken,
            user=user_id,
        )

    def update_campaigns(self, rows: Sequence[Row]) -> dict[UUID, Campaign]:
        """Write the fields of these live campaigns; BatchRefused (nothing written) when the
        live-name index refuses one."""
        return self._refusable(
            """
            UPDATE nigredo_leads.campanhas AS k SET
                name = v.name, description = v.description, channel = v.channel,
                status = v.status
            FROM json_populate_recordset(NULL::nigredo_leads.campanhas, %(rows)s) AS v
            WHERE k.tenant_id = %(tenant)s AND k.id = v.id AND k.deleted_at IS NULL
            RETURNING k.*
            """,
            rows,
            Campaign.model_validate,
        )

    def delete_campaigns(self, ids: Sequence[UUID]) -> dict[UUID, Campaign]:
        found = self._conn.execute(
            """
            UPDATE nigredo_leads.campanhas SET deleted_at = now()
            WHERE tenant_id = %s AND id = ANY(%s) AND deleted_at IS NULL
            RETURNING *
            """,
            (self._tenant_id, list(ids)),
        ).fetchall()
        return {row["id"]: Campaign.model_validate(row) for row in found}

    # ---- interactions -------------------------------------------------------------------

    def create_interactions(
        self, rows: Sequence[Row], *, user_id: UUID | None, skip_taken: bool = True
    ) -> dict[UUID, Interaction]:
        """Append to the timelines of live leads of the tenant (the interaction takes its lead's
        campaign, as ``InteractionRepository.append``); an id taken is skipped."""
        return self._insert(
            """
            INSERT INTO nigredo_leads.interacoes (
                id, tenant_id, lead_id, campanha_id, user_id, channel, direction, kind, content,
                occurred_at)
            SELECT v.id, l.tenant_id, l.id, l.campanha_id, %(user)s, v.channel, v.direction,
                   v.kind, v.content, coalesce(v.occurred_at, now())
            FROM json_populate_recordset(NULL::nigredo_leads.interacoes, %(rows)s)
                 WITH ORDINALITY AS v
            JOIN nigredo_leads.leads AS l
              ON l.tenant_id = %(tenant)s AND l.id = v.lead_id AND l.deleted_at IS NULL
            ORDER BY v.ordinality
            """,
            rows,
            Interaction.model_validate,
            skip_taken=skip_taken,
            user=user_id,
        )

    # ---- meetings -----------------------------------------------------------------------

    def create_meetings(
        self, rows: Sequence[Row], *, skip_taken: bool = True
    ) -> dict[UUID, Meeting]:
        """Schedule meetings with live leads of the tenant, in the batch's order; one that
        overlaps its owner's live meetings (the exclusion constraint) or whose id is taken is
        skipped."""
        return self._insert(
            """
            INSERT INTO nigredo_leads.agendamentos (
                id, tenant_id, lead_id, owner_user_id, scheduled_for, duration_minutes)
            SELECT v.id, l.tenant_id, l.id, v.owner_user_id, v.scheduled_for, v.duration_minutes
            FROM json_populate_recordset(NULL::nigredo_leads.agendamentos, %(rows)s)
                 WITH ORDINALITY AS v
            JOIN nigredo_leads.leads AS l
              ON l.tenant_id = %(tenant)s AND l.id = v.lead_id AND l.deleted_at IS NULL
            ORDER BY v.ordinality
            """,
            rows,
            Meeting.model_validate,
            skip_taken=skip_taken,
        )

    def reschedule_meetings(self, rows: Sequence[Row]) -> dict[UUID, Meeting]:
        """Move these open (scheduled or confirmed) meetings; BatchRefused (nothing written) when
        the owner's no-overlap constraint refuses one."""
        return self._refusable(
            """
            UPDATE nigredo_leads.agendamentos AS m SET
                scheduled_for = v.scheduled_for, duration_minutes = v.duration_minutes
            FROM json_populate_recordset(NULL::nigredo_leads.agendamentos, %(rows)s) AS v
            WHERE m.tenant_id = %(tenant)s AND m.id = v.id AND m.deleted_at IS NULL
              AND m.status IN ('scheduled', 'confirmed')
            RETURNING m.*
            """,
            rows,
            Meeting.model_validate,
        )

    def cancel_meetings(self, ids: Sequence[UUID]) -> dict[UUID, Meeting]:
        """Cancel these open meetings (as ``MeetingRepository.set_status``: frees the slot)."""
        found = self._conn.execute(
            """
            UPDATE nigredo_leads.agendamentos SET status = 'canceled'
            WHERE tenant_id = %s AND id = ANY(%s) AND deleted_at IS NULL
              AND status IN ('scheduled', 'confirmed')
            RETURNING *
            """,
            (self._tenant_id, list(ids)),
        ).fetchall()
        return {row["id"]: Meeting.model_validate(row) for row in found}

    def _insert(
        self,
        statement: LiteralString,
        rows: Sequence[Row],
        model: Callable[[Any], R],
        *,
        skip_taken: bool,
        user: UUID | None = None,
    ) -> dict[UUID, R]:
        if skip_taken:
            statement += " ON CONFLICT DO NOTHING"
        return self._refusable(statement + " RETURNING *", rows, model, user=user)

    def _refusable(
        self,
        statement: LiteralString,
        rows: Sequence[Row],
        model: Callable[[Any], R],
        *,
        user: UUID | None = None,
    ) -> dict[UUID, R]:
        params = {"tenant": self._tenant_id, "user": user, "rows": _rows(rows)}
        try:
            with self._conn.transaction():
                found = self._conn.execute(statement, params).fetchall()
        except psycopg.errors.IntegrityError as error:
            raise BatchRefused(str(error.diag.constraint_name)) from error
        return {row["id"]: model(row) for row in found}
