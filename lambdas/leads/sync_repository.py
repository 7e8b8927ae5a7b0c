"""SQL of sync: the changes feed, idempotent mutations, conflicts, the tenant's sync settings,
the purge of soft-deleted rows and the daily metrics rollup."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from typing import Any, LiteralString
from uuid import UUID

import psycopg
from psycopg.types.json import Json, Jsonb

from lambdas.leads.models import Conflict, FeedPage, Lead, LeadWrite, NewConflict
from lambdas.leads.ports import BatchRefused
from lambdas.shared.db import Connection


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


# Every column but tenant_id, named (row_to_json of the row costs about two thirds of
# to_jsonb(row) - 'tenant_id', and a column added later reaches clients only when named here).
_LEAD_FEED_COLUMNS = """
    id, campanha_id, assigned_to, full_name, email, phone, company, company_tax_id, job_title,
    source, status, score, tags, legal_basis, consent_status, consent_purposes, consent_given_at,
    consent_withdrawn_at, consent_source, consent_text_version, consent_ip, data_retention_until,
    anonymized_at, last_contacted_at, metadata, created_at, updated_at, version, deleted_at,
    email_normalized, phone_e164, converted_at
"""
_CAMPAIGN_FEED_COLUMNS = """
    id, name, description, channel, status, starts_at, ends_at, budget, currency,
    target_criteria, agent_id, created_by, metadata, created_at, updated_at, version, deleted_at
"""
_INTERACTION_FEED_COLUMNS = """
    id, lead_id, campanha_id, agent_id, user_id, channel, direction, kind, content, sentiment,
    occurred_at, metadata, created_at, updated_at, version, deleted_at
"""
_MEETING_FEED_COLUMNS = """
    id, lead_id, owner_user_id, scheduled_for, duration_minutes, status, meeting_url, notes,
    metadata, created_at, updated_at, version, deleted_at, ends_at
"""

# Rows below the oldest transaction still in flight only (see migration 031): whatever commits
# later has a txid at or above that horizon, so it lands after any cursor served so far. Each
# row's data is read by primary key for the page's rows only (a join would hash whole tables).
# The page is built here as one JSON text that the route passes through as it is: no row is
# parsed, validated and printed again in Python. One row always: ``changes`` is NULL on an
# empty page, ``txid``/``seq`` are the last served row's position.
_FEED_PAGE_SQL = (
    """
WITH page AS MATERIALIZED (
    SELECT c.entity, c.entity_id, c.op, c.version, c.txid, c.seq,
           row_number() OVER (ORDER BY c.txid, c.seq) AS n
    FROM (
        SELECT * FROM nigredo_leads.changes AS c
        WHERE c.tenant_id = %(tenant)s
          AND (c.txid, c.seq) > (%(txid)s::text::xid8, %(seq)s::bigint)
          AND c.txid < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY c.txid, c.seq
        LIMIT %(limit)s + 1
    ) AS c
), served AS (
    SELECT * FROM page WHERE n <= %(limit)s
)
SELECT
    (SELECT json_agg(json_build_object(
                'entity', p.entity, 'id', p.entity_id, 'op', p.op, 'version', p.version,
                'data', CASE WHEN p.op = 'delete' THEN NULL
                    WHEN p.entity = 'lead' THEN (
                        SELECT row_to_json(l) FROM (
                            SELECT """
    + _LEAD_FEED_COLUMNS
    + """ FROM nigredo_leads.leads AS l WHERE l.id = p.entity_id) AS l)
                    WHEN p.entity = 'campaign' THEN (
                        SELECT row_to_json(k) FROM (
                            SELECT """
    + _CAMPAIGN_FEED_COLUMNS
    + """ FROM nigredo_leads.campanhas AS k WHERE k.id = p.entity_id) AS k)
                    WHEN p.entity = 'interaction' THEN (
                        SELECT row_to_json(i) FROM (
                            SELECT """
    + _INTERACTION_FEED_COLUMNS
    + """ FROM nigredo_leads.interacoes AS i WHERE i.id = p.entity_id) AS i)
                    ELSE (
                        SELECT row_to_json(m) FROM (
                            SELECT """
    + _MEETING_FEED_COLUMNS
    + """ FROM nigredo_leads.agendamentos AS m WHERE m.id = p.entity_id) AS m) END)
            ORDER BY p.n)::text
     FROM served AS p) AS changes,
    (SELECT count(*) FROM page) > %(limit)s AS has_more,
    (SELECT p.txid::text::bigint FROM served AS p ORDER BY p.n DESC LIMIT 1) AS txid,
    (SELECT p.seq FROM served AS p ORDER BY p.n DESC LIMIT 1) AS seq
"""
)

_ENTITY_TABLES: tuple[tuple[str, LiteralString], ...] = (
    ("interaction", "nigredo_leads.interacoes"),
    ("meeting", "nigredo_leads.agendamentos"),
    ("lead", "nigredo_leads.leads"),
    ("campaign", "nigredo_leads.campanhas"),
)


class ChangesFeed:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def page_json(self, *, after: tuple[int, int], limit: int) -> FeedPage:
        """Up to ``limit`` changes after the (txid, seq) position, as a JSON array of
        ``Change`` objects, with the last one's position."""
        row = self._conn.execute(
            _FEED_PAGE_SQL,
            {"tenant": self._tenant_id, "txid": after[0], "seq": after[1], "limit": limit},
        ).fetchone()
        if row is None or row["changes"] is None:
            return FeedPage("[]", has_more=False, last=None)
        return FeedPage(row["changes"], has_more=row["has_more"], last=(row["txid"], row["seq"]))

    def purge_watermark(self) -> tuple[int, int] | None:
        row = self._conn.execute(
            """
            SELECT purged_through_txid::text::bigint AS txid, purged_through_seq AS seq
            FROM nigredo_leads.sync_settings
            WHERE tenant_id = %s AND purged_through_txid IS NOT NULL
            """,
            (self._tenant_id,),
        ).fetchone()
        return (row["txid"], row["seq"]) if row else None


def _write_rows(rows: Sequence[LeadWrite]) -> Json:
    return Json(
        [
            fields.model_dump(mode="json")
            | {"id": str(lead_id), "email_normalized": email, "phone_e164": phone}
            for lead_id, fields, email, phone in rows
        ]
    )


class LeadBatchWriter:
    """The multi-row lead writes of a sync batch: the rows travel as one JSON array read through
    the table's row type (json_populate_recordset), one statement per kind; the triggers (version,
    changes feed, converted_at) fire per row as for single writes."""

    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def create_many(self, rows: Sequence[LeadWrite]) -> dict[UUID, Lead]:
        found = self._conn.execute(
            """
            INSERT INTO nigredo_leads.leads (
                id, tenant_id, campanha_id, assigned_to, full_name, email, phone, company,
                company_tax_id, job_title, source, status, score, tags, legal_basis,
                email_normalized, phone_e164)
            SELECT v.id, %(tenant)s, v.campanha_id, v.assigned_to, v.full_name, v.email, v.phone,
                   v.company, v.company_tax_id, v.job_title, v.source, v.status, v.score, v.tags,
                   v.legal_basis, v.email_normalized, v.phone_e164
            FROM json_populate_recordset(NULL::nigredo_leads.leads, %(rows)s) AS v
            ON CONFLICT DO NOTHING
            RETURNING *
            """,
            {"tenant": self._tenant_id, "rows": _write_rows(rows)},
        ).fetchall()
        return {row["id"]: Lead.model_validate(row) for row in found}

    def update_many(self, rows: Sequence[LeadWrite]) -> dict[UUID, Lead]:
        """Write every editable field of these live leads; BatchRefused (nothing written) when a
        unique index refuses one of them."""
        try:
            with self._conn.transaction():
                found = self._conn.execute(
                    """
                    UPDATE nigredo_leads.leads AS l SET
                        campanha_id = v.campanha_id, assigned_to = v.assigned_to,
                        full_name = v.full_name, email = v.email, phone = v.phone,
                        company = v.company, company_tax_id = v.company_tax_id,
                        job_title = v.job_title, source = v.source, status = v.status,
                        score = v.score, tags = v.tags, legal_basis = v.legal_basis,
                        email_normalized = v.email_normalized, phone_e164 = v.phone_e164
                    FROM json_populate_recordset(NULL::nigredo_leads.leads, %(rows)s) AS v
                    WHERE l.tenant_id = %(tenant)s AND l.id = v.id AND l.deleted_at IS NULL
                    RETURNING l.*
                    """,
                    {"tenant": self._tenant_id, "rows": _write_rows(rows)},
                ).fetchall()
        except psycopg.errors.UniqueViolation as error:
            raise BatchRefused(str(error.diag.constraint_name)) from error
        return {row["id"]: Lead.model_validate(row) for row in found}

    def soft_delete_many(self, lead_ids: Sequence[UUID]) -> dict[UUID, Lead]:
        found = self._conn.execute(
            """
            UPDATE nigredo_leads.leads SET deleted_at = now()
            WHERE tenant_id = %s AND id = ANY(%s) AND deleted_at IS NULL
            RETURNING *
            """,
            (self._tenant_id, list(lead_ids)),
        ).fetchall()
        return {row["id"]: Lead.model_validate(row) for row in found}


class SyncSettingsRepository:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def last_writer_wins(self) -> bool:
        row = self._conn.execute(
            "SELECT last_writer_wins FROM nigredo_leads.sync_settings WHERE tenant_id = %s",
            (self._tenant_id,),
        ).fetchone()
        return bool(row and row["last_writer_wins"])

    def set_last_writer_wins(self, enabled: bool) -> None:
        self._conn.execute(
            """
            INSERT INTO nigredo_leads.sync_settings (tenant_id, last_writer_wins) VALUES (%s, %s)
            ON CONFLICT (tenant_id) DO UPDATE SET last_writer_wins = EXCLUDED.last_writer_wins
            """,
            (self._tenant_id, enabled),
        )


class MutationLog:
    """Client mutation ids, claimed before they are applied, a batch at a time: a replay (or a
    concurrent push of the same batch, which waits on the unique index) finds the stored
    results instead."""

    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def claim_many(
        self,
        claims: Sequence[tuple[str, str, str, UUID]],
        *,
        device_id: str,
        batch_id: UUID,
        user_id: UUID | None,
    ) -> dict[str, UUID]:
        """Claim (client mutation id, entity, op, entity id) rows; returns the newly claimed ids by
        client mutation id (the others were applied before)."""
        rows = self._conn.execute(
            """
            INSERT INTO nigredo_leads.sync_mutations (
                tenant_id, device_id, client_mutation_id, batch_id, entity, entity_id, op,
                outcome, user_id)
            SELECT %(tenant)s, %(device)s, c.cmid, %(batch)s, c.entity, c.entity_id, c.op,
                   'rejected', %(user)s
            FROM unnest(%(cmids)s::text[], %(entities)s::text[], %(ops)s::text[],
                        %(ids)s::uuid[]) AS c (cmid, entity, op, entity_id)
            ON CONFLICT (tenant_id, device_id, client_mutation_id) DO NOTHING
            RETURNING client_mutation_id, id
            """,
            {
                "tenant": self._tenant_id,
                "device": device_id,
                "batch": batch_id,
                "user": user_id,
                "cmids": [c[0] for c in claims],
                "entities": [c[1] for c in claims],
                "ops": [c[2] for c in claims],
                "ids": [c[3] for c in claims],
            },
        ).fetchall()
        return {row["client_mutation_id"]: row["id"] for row in rows}

    def stored_many(self, *, device_id: str, cmids: Sequence[str]) -> dict[str, dict[str, Any]]:
        rows = self._conn.execute(
            """
            SELECT client_mutation_id, outcome, result FROM nigredo_leads.sync_mutations
            WHERE tenant_id = %s AND device_id = %s AND client_mutation_id = ANY(%s)
            """,
            (self._tenant_id, device_id, list(cmids)),
        ).fetchall()
        return {
            row["client_mutation_id"]: {**row["result"], "outcome": row["outcome"]} for row in rows
        }

    def finish_many(self, results: Sequence[tuple[UUID, str, dict[str, Any]]]) -> None:
        if not results:
            return
        # one JSON document: a jsonb[] parameter is quoted and escaped element by element in
        # Python (a third of the client's time in a 1,000-mutation push's writes)
        self._conn.execute(
            """
            UPDATE nigredo_leads.sync_mutations AS m SET outcome = r.outcome, result = r.result
            FROM jsonb_to_recordset(%s) AS r (id uuid, outcome text, result jsonb)
            WHERE m.tenant_id = %s AND m.id = r.id
            """,
            (
                Jsonb([{"id": str(r[0]), "outcome": r[1], "result": r[2]} for r in results]),
                self._tenant_id,
            ),
        )


class ConflictRepository:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def add_many(self, conflicts: Sequence[NewConflict]) -> None:
        """Store a batch's conflicts in one statement."""
        self._conn.execute(
            """
            INSERT INTO nigredo_leads.sync_conflicts (
                id, tenant_id, mutation_id, entity, entity_id, kind, mine, theirs, base_version)
            SELECT c.id, %(tenant)s, c.mutation_id, c.entity, c.entity_id, c.kind, c.mine,
                   c.theirs, c.base_version
            FROM json_to_recordset(%(rows)s) AS c (
                id uuid, mutation_id uuid, entity text, entity_id uuid, kind text, mine jsonb,
                theirs jsonb, base_version bigint)
            """,
            {
                "tenant": self._tenant_id,
                "rows": Json([asdict(c) for c in conflicts], dumps=_dumps),
            },
        )

    def get(self, conflict_id: UUID, *, lock: bool = False) -> Conflict | None:
        row = self._conn.execute(
            "SELECT * FROM nigredo_leads.sync_conflicts WHERE tenant_id = %s AND id = %s"
            + (" FOR UPDATE" if lock else ""),
            (self._tenant_id, conflict_id),
        ).fetchone()
        return Conflict.model_validate(row) if row else None

    def open_conflicts(self, *, limit: int = 100) -> list[Conflict]:
        rows = self._conn.execute(
            """
            SELECT * FROM nigredo_leads.sync_conflicts
            WHERE tenant_id = %s AND status = 'open' ORDER BY created_at, id LIMIT %s
            """,
            (self._tenant_id, limit),
        ).fetchall()
        return [Conflict.model_validate(row) for row in rows]

    def resolve(self, conflict_id: UUID, *, resolution: str, resolved_by: UUID | None) -> bool:
        row = self._conn.execute(
            """
            UPDATE nigredo_leads.sync_conflicts
            SET status = 'resolved', resolution = %s, resolved_by = %s, resolved_at = now()
            WHERE tenant_id = %s AND id = %s AND status = 'open'
            RETURNING id
            """,
            (resolution, resolved_by, self._tenant_id, conflict_id),
        ).fetchone()
        return row is not None


class RetentionRepository:
    """The purge of rows soft-deleted more than ``days`` ago, and the daily metrics rollup."""

    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def purge(self, *, days: int = 30) -> int:
        """Delete the tenant's rows soft-deleted more than ``days`` ago (a lead takes its
        interactions, meetings and consents with it) and move the feed's purge watermark past
        their tombstones, so a client with an older cursor is told to resync. Returns the
        number of rows deleted."""
        params = {"tenant": self._tenant_id, "days": days}
        self._conn.execute(
            """
            INSERT INTO nigredo_leads.sync_settings AS s (
                tenant_id, purged_through_txid, purged_through_seq)
            SELECT %(tenant)s, c.txid, c.seq
            FROM nigredo_leads.changes AS c
            LEFT JOIN nigredo_leads.leads AS l ON c.entity = 'lead' AND l.id = c.entity_id
            LEFT JOIN nigredo_leads.campanhas AS k ON c.entity = 'campaign' AND k.id = c.entity_id
            LEFT JOIN nigredo_leads.interacoes AS i
                ON c.entity = 'interaction' AND i.id = c.entity_id
            LEFT JOIN nigredo_leads.agendamentos AS m ON c.entity = 'meeting' AND m.id = c.entity_id
            WHERE c.tenant_id = %(tenant)s AND c.op = 'delete'
              AND coalesce(l.deleted_at, k.deleted_at, i.deleted_at, m.deleted_at)
                  < now() - make_interval(days => %(days)s)
            ORDER BY c.txid DESC, c.seq DESC
            LIMIT 1
            ON CONFLICT (tenant_id) DO UPDATE SET
                purged_through_txid = EXCLUDED.purged_through_txid,
                purged_through_seq = EXCLUDED.purged_through_seq
            WHERE s.purged_through_txid IS NULL
               OR (s.purged_through_txid, s.purged_through_seq)
                  < (EXCLUDED.purged_through_txid, EXCLUDED.purged_through_seq)
            """,
            params,
        )
        deleted = 0
        for _, table in _ENTITY_TABLES:
            cursor = self._conn.execute(
                "DELETE FROM "
                + table
                + """
                WHERE tenant_id = %(tenant)s
                  AND deleted_at < now() - make_interval(days => %(days)s)
                """,
                params,
            )
            deleted += cursor.rowcount
        return deleted

    def rollup(self, day: date) -> int:
        """Upsert the tenant's metrics of ``day`` (in the tenant's time zone) per campaign:
        re-running it gives the same rows. Returns the number of rows written."""
        cursor = self._conn.execute(
            """
            WITH bounds AS (
                SELECT (%(day)s::date)::timestamp AT TIME ZONE t.timezone AS lo,
                       (%(day)s::date + 1)::timestamp AT TIME ZONE t.timezone AS hi
                FROM alquimista_platform.tenants AS t WHERE t.id = %(tenant)s
            ), leads AS (
                SELECT l.campanha_id,
                       count(*) FILTER (
                           WHERE l.created_at >= b.lo AND l.created_at < b.hi) AS created,
                       count(*) FILTER (
                           WHERE l.converted_at >= b.lo AND l.converted_at < b.hi) AS won
                FROM nigredo_leads.leads AS l, bounds AS b
                WHERE l.tenant_id = %(tenant)s
                  AND ((l.created_at >= b.lo AND l.created_at < b.hi)
                       OR (l.converted_at >= b.lo AND l.converted_at < b.hi))
                GROUP BY l.campanha_id
            ), touches AS (
                SELECT l.campanha_id, count(*) AS interactions,
                       count(DISTINCT i.lead_id)
                           FILTER (WHERE i.direction = 'outbound') AS contacted,
                       count(DISTINCT i.lead_id)
                           FILTER (WHERE i.direction = 'inbound') AS replied
                FROM nigredo_leads.interacoes AS i
                JOIN nigredo_leads.leads AS l ON l.id = i.lead_id, bounds AS b
                WHERE i.tenant_id = %(tenant)s AND i.occurred_at >= b.lo AND i.occurred_at < b.hi
                GROUP BY l.campanha_id
            ), meetings AS (
                SELECT l.campanha_id, count(*) AS scheduled
                FROM nigredo_leads.agendamentos AS m
                JOIN nigredo_leads.leads AS l ON l.id = m.lead_id, bounds AS b
                WHERE m.tenant_id = %(tenant)s AND m.created_at >= b.lo AND m.created_at < b.hi
                GROUP BY l.campanha_id
            ), keys AS (
                SELECT campanha_id FROM leads UNION SELECT campanha_id FROM touches
                UNION SELECT campanha_id FROM meetings
            )
            INSERT INTO nigredo_leads.metricas_diarias AS d (
                tenant_id, campanha_id, day, leads_created, contacted, replied, interactions,
                meetings_scheduled, conversions)
            SELECT %(tenant)s, k.campanha_id, %(day)s, coalesce(l.created, 0),
                   coalesce(t.contacted, 0), coalesce(t.replied, 0), coalesce(t.interactions, 0),
                   coalesce(m.scheduled, 0), coalesce(l.won, 0)
            FROM keys AS k
            LEFT JOIN leads AS l ON l.campanha_id IS NOT DISTINCT FROM k.campanha_id
            LEFT JOIN touches AS t ON t.campanha_id IS NOT DISTINCT FROM k.campanha_id
            LEFT JOIN meetings AS m ON m.campanha_id IS NOT DISTINCT FROM k.campanha_id
            ON CONFLICT (tenant_id, campanha_id, day) DO UPDATE SET
                leads_created = EXCLUDED.leads_created, contacted = EXCLUDED.contacted,
                replied = EXCLUDED.replied, interactions = EXCLUDED.interactions,
                meetings_scheduled = EXCLUDED.meetings_scheduled,
                conversions = EXCLUDED.conversions
            """,
            {"tenant": self._tenant_id, "day": day},
        )
        return cursor.rowcount

    def metrics(self, *, day_from: date, day_to: date) -> list[dict[str, Any]]:
        return self._conn.execute(
            """
            SELECT campanha_id, day, leads_created, contacted, replied, interactions,
                   meetings_scheduled, conversions
            FROM nigredo_leads.metricas_diarias
            WHERE tenant_id = %s AND day BETWEEN %s AND %s
            ORDER BY day, campanha_id NULLS FIRST
            """,
            (self._tenant_id, day_from, day_to),
        ).fetchall()
