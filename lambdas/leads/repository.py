"""SQL of leads, campaigns, interactions and meetings. Every statement filters by the tenant
(RLS enforces it too); the version is bumped by a trigger, never here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, LiteralString
from uuid import UUID

import psycopg
from pydantic import TypeAdapter

from lambdas.leads.errors import DUPLICATE_FIELDS, DuplicateLead, map_violation
from lambdas.leads.models import Campaign, Interaction, Lead, LeadFields, LeadFilters, Meeting
from lambdas.shared.db import Connection

_LEAD_COLUMNS = """
    id, tenant_id, campanha_id, assigned_to, full_name, email, phone, company, company_tax_id,
    job_title, source, status, score, tags, legal_basis, consent_status, email_normalized,
    phone_e164, version, deleted_at, anonymized_at, created_at, updated_at
"""


def _lead_params(fields: LeadFields, email: str | None, phone: str | None) -> dict[str, Any]:
    params = fields.model_dump()
    params.update(email_normalized=email, phone_e164=phone)
    return params


# A search key held by fewer live leads than this is not counted (search_key_counts, migration
# 064): the list's text search treats it as rare.
KEY_COUNT_FLOOR: Final = 64


class LeadRepository:
    """Leads of one tenant. Duplicates are decided by the unique indexes on the normalised
    e-mail and phone among live rows."""

    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def create(
        self,
        lead_id: UUID | None,
        fields: LeadFields,
        *,
        email_normalized: str | None,
        phone_e164: str | None,
    ) -> Lead:
        """Insert a lead, or DuplicateLead naming the live lead that holds its e-mail/phone."""
        params = _lead_params(fields, email_normalized, phone_e164)
        params.update(id=lead_id, tenant=self._tenant_id)
        row = self._conn.execute(
            """
            INSERT INTO nigredo_leads.leads (
                id, tenant_id, campanha_id, assigned_to, full_name, email, phone, company,
                company_tax_id, job_title, source, status, score, tags, legal_basis,
                email_normalized, phone_e164)
            VALUES (
                coalesce(%(id)s, gen_random_uuid()), %(tenant)s, %(campanha_id)s,
                %(assigned_to)s, %(full_name)s, %(email)s, %(phone)s, %(company)s,
                %(company_tax_id)s, %(job_title)s, %(source)s, %(status)s, %(score)s, %(tags)s,
                %(legal_basis)s, %(email_normalized)s, %(phone_e164)s)
            ON CONFLICT DO NOTHING
            RETURNING """
            + _LEAD_COLUMNS,
            params,
        ).fetchone()
        if row is None:
            raise self._duplicate_of(email_normalized, phone_e164, lead_id)
        return Lead.model_validate(row)

    def _duplicate_of(
        self, email: str | None, phone: str | None, lead_id: UUID | None
    ) -> DuplicateLead:
        row = self._conn.execute(
            """
            SELECT id, CASE WHEN email_normalized = %(email)s THEN 'email'
                            WHEN phone_e164 = %(phone)s THEN 'phone' ELSE 'id' END AS field
            FROM nigredo_leads.leads
            WHERE tenant_id = %(tenant)s
              AND (id = %(id)s
                   OR (deleted_at IS NULL
                       AND (email_normalized = %(email)s OR phone_e164 = %(phone)s)))
            ORDER BY (email_normalized = %(email)s) DESC NULLS LAST
            LIMIT 1
            """,
            {"tenant": self._tenant_id, "email": email, "phone": phone, "id": lead_id},
        ).fetchone()
        if row is None:  # the holder was deleted in between: let the client retry
            raise RuntimeError("a unique index refused the lead but no holder was found")
        return DuplicateLead(row["id"], row["field"])

    def find_live_by_identifiers(self, email: str | None, phone: str | None) -> UUID | None:
        """The live lead holding this normalised e-mail or phone, if any."""
        row = self._conn.execute(
            """
            SELECT id FROM nigredo_leads.leads
            WHERE tenant_id = %(tenant)s AND deleted_at IS NULL
              AND (email_normalized = %(email)s OR phone_e164 = %(phone)s)
            LIMIT 1
            """,
            {"tenant": self._tenant_id, "email": email, "phone": phone},
        ).fetchone()
        return row["id"] if row else None

    def get(
        self, lead_id: UUID, *, include_deleted: bool = False, lock: bool = False
    ) -> Lead | None:
        row = self._conn.execute(
            "SELECT "
            + _LEAD_COLUMNS
            + """
            FROM nigredo_leads.leads
            WHERE tenant_id = %(tenant)s AND id = %(id)s
              AND (%(deleted)s OR deleted_at IS NULL)
            """
            + (" FOR UPDATE" if lock else ""),
            {"tenant": self._tenant_id, "id": lead_id, "deleted": include_deleted},
        ).fetchone()
        return Lead.model_validate(row) if row else None

    def get_many(self, lead_ids: Sequence[UUID], *, lock: bool = False) -> dict[UUID, Lead]:
        """The leads with these ids, deleted ones included, by id (locked for update)."""
        rows = self._conn.execute(
            "SELECT "
            + _LEAD_COLUMNS
            + " FROM nigredo_leads.leads WHERE tenant_id = %s AND id = ANY(%s)"
            + (" ORDER BY id FOR UPDATE" if lock else ""),
            (self._tenant_id, list(lead_ids)),
        ).fetchall()
        return {row["id"]: Lead.model_validate(row) for row in rows}

    def live_owners(
        self, emails: Sequence[str], phones: Sequence[str]
    ) -> dict[tuple[str, str], UUID]:
        """The live leads holding any of these normalised identifiers, keyed by
        ("email" | "phone", value)."""
        rows = self._conn.execute(
            """
            SELECT id, email_normalized, phone_e164 FROM nigredo_leads.leads
            WHERE tenant_id = %s AND deleted_at IS NULL
              AND (email_normalized = ANY(%s) OR phone_e164 = ANY(%s))
            """,
            (self._tenant_id, list(emails), list(phones)),
        ).fetchall()
        owners: dict[tuple[str, str], UUID] = {}
        for row in rows:
            if row["email_normalized"]:
                owners["email", row["email_normalized"]] = row["id"]
            if row["phone_e164"]:
                owners["phone", row["phone_e164"]] = row["id"]
        return owners

    def update(
        self,
        lead_id: UUID,
        fields: LeadFields,
        *,
        expected_version: int | None,
        email_normalized: str | None,
        phone_e164: str | None,
    ) -> Lead | None:
        """Write every editable field if the live lead is at ``expected_version`` (None: any
        version, for last-writer-wins); None when it is not (stale, deleted or missing)."""
        params = _lead_params(fields, email_normalized, phone_e164)
        params.update(tenant=self._tenant_id, id=lead_id, version=expected_version)
        try:
            with self._conn.transaction():
                row = self._conn.execute(
                    """
                    UPDATE nigredo_leads.leads SET
                        campanha_id = %(campanha_id)s, assigned_to = %(assigned_to)s,
                        full_name = %(full_name)s, email = %(email)s, phone = %(phone)s,
                        company = %(company)s, company_tax_id = %(company_tax_id)s,
                        job_title = %(job_title)s, source = %(source)s, status = %(status)s,
                        score = %(score)s, tags = %(tags)s, legal_basis = %(legal_basis)s,
                        email_normalized = %(email_normalized)s, phone_e164 = %(phone_e164)s
                    WHERE tenant_id = %(tenant)s AND id = %(id)s AND deleted_at IS NULL
                      AND (%(version)s::bigint IS NULL OR version = %(version)s)
                    RETURNING """
                    + _LEAD_COLUMNS,
                    params,
                ).fetchone()
        except psycopg.errors.UniqueViolation as error:
            if error.diag.constraint_name not in DUPLICATE_FIELDS:
                raise
            raise self._duplicate_of(email_normalized, phone_e164, None) from error
        return Lead.model_validate(row) if row else None

    def soft_delete(self, lead_id: UUID, *, expected_version: int | None) -> Lead | None:
        row = self._conn.execute(
            """
            UPDATE nigredo_leads.leads SET deleted_at = now()
            WHERE tenant_id = %(tenant)s AND id = %(id)s AND deleted_at IS NULL
              AND (%(version)s::bigint IS NULL OR version = %(version)s)
            RETURNING """
            + _LEAD_COLUMNS,
            {"tenant": self._tenant_id, "id": lead_id, "version": expected_version},
        ).fetchone()
        return Lead.model_validate(row) if row else None

    def page(
        self, filters: LeadFilters, *, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[Lead]:
        """Live leads, newest first, after the keyset position ``after``. Only the filters given
        reach the SQL: a prepared "param IS NULL OR ..." predicate would hide the indexes from a
        generic plan, so each filter shape gets its own statement. A text search (a
        case-insensitive substring of name, company and e-mail) or a tag filter goes through
        ``list_lead_ids_v2``, which builds its statement the same way (migrations 054, 064)."""
        params: dict[str, Any] = {
            "tenant": self._tenant_id,
            "status": filters.status,
            "campaign": filters.campanha_id,
            "owner": filters.assigned_to,
            "tags": filters.tags or None,
            "created_from": filters.created_from,
            "created_to": filters.created_to,
            "updated_from": filters.updated_from,
            "updated_to": filters.updated_to,
            "q": f"%{_like_escape(filters.q)}%" if filters.q else None,
            "after_at": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit,
        }
        if params["q"] is not None or params["tags"] is not None:
            rows = self._conn.execute(_PAGE_THROUGH_FUNCTION_SQL, params).fetchall()
        else:
            where: list[LiteralString] = [
                clause for name, clause in _PAGE_FILTERS if params[name] is not None
            ]
            rows = self._conn.execute(
                "SELECT "
                + _LEAD_COLUMNS
                + " FROM nigredo_leads.leads WHERE tenant_id = %(tenant)s AND deleted_at IS NULL"
                + "".join(" AND " + clause for clause in where)
                + " ORDER BY created_at DESC, id DESC LIMIT %(limit)s",
                params,
            ).fetchall()
        return _LEADS.validate_python(rows)

    def count_search_keys(self, *, floor: int = KEY_COUNT_FLOOR) -> int:
        """Rewrite the tenant's ``search_key_counts``: how many live leads hold each search key
        (a key counted once per lead) that at least ``floor`` of them hold, and under the empty
        key how many live leads the tenant has (the mark that it was counted). The list's text
        search reads them to choose between the keyed lookup and the walk (migration 064).
        Returns the keys counted."""
        params = {"tenant": self._tenant_id, "floor": floor}
        self._conn.execute(
            "DELETE FROM nigredo_leads.search_key_counts WHERE tenant_id = %(tenant)s", params
        )
        row = self._conn.execute(
            """
            WITH live AS (
                SELECT l.tenant_id, l.search_text FROM nigredo_leads.leads AS l
                WHERE l.tenant_id = %(tenant)s AND l.deleted_at IS NULL
            ), written AS (
                INSERT INTO nigredo_leads.search_key_counts (tenant_id, key, leads)
                SELECT %(tenant)s, held.key, count(*)
                FROM live
                CROSS JOIN LATERAL (
                    SELECT DISTINCT key
                    FROM unnest(nigredo_leads.search_keys_v1(live.tenant_id, live.search_text))
                        AS key
                ) AS held
                GROUP BY held.key
                HAVING count(*) >= %(floor)s
                UNION ALL
                SELECT %(tenant)s, '', count(*) FROM live HAVING count(*) > 0
                RETURNING key
            )
            SELECT count(*) FILTER (WHERE key <> '') AS keys FROM written
            """,
            params,
        ).fetchone()
        return int(row["keys"]) if row else 0


_LEADS = TypeAdapter(list[Lead])

# A text search (ILIKE) or a tag filter (@>) is not leakproof: under RLS the planner keeps it out
# of the trigram and tag indexes. list_lead_ids_v2 (migration 064; v1 in 050) picks the page's
# ids in the scoped tenant without that barrier; the rows are then read by id under this role's
# RLS.
_PAGE_THROUGH_FUNCTION_SQL: LiteralString = (
    "SELECT "
    + _LEAD_COLUMNS
    + """
    FROM nigredo_leads.leads
    WHERE tenant_id = %(tenant)s AND deleted_at IS NULL
      AND id = ANY(ARRAY(SELECT nigredo_leads.list_lead_ids_v2(
          %(status)s::text, %(campaign)s::uuid, %(owner)s::uuid, %(tags)s::text[],
          %(created_from)s::timestamptz, %(created_to)s::timestamptz,
          %(updated_from)s::timestamptz, %(updated_to)s::timestamptz, %(q)s::text,
          %(after_at)s::timestamptz, %(after_id)s::uuid, %(limit)s::integer)))
    ORDER BY created_at DESC, id DESC
    """
)


# The list's filters by parameter name (each applies when its parameter is not None); a text
# search or a tag filter goes through list_lead_ids_v2 instead.
_PAGE_FILTERS: tuple[tuple[str, LiteralString], ...] = (
    ("status", "status = %(status)s"),
    ("campaign", "campanha_id = %(campaign)s"),
    ("owner", "assigned_to = %(owner)s"),
    ("tags", "tags @> %(tags)s::text[]"),
    ("created_from", "created_at >= %(created_from)s"),
    ("created_to", "created_at < %(created_to)s"),
    ("updated_from", "updated_at >= %(updated_from)s"),
    ("updated_to", "updated_at < %(updated_to)s"),
    ("after_at", "(created_at, id) < (%(after_at)s, %(after_id)s::uuid)"),
)


def _like_escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class CampaignRepository:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def create(self, *, name: str, channel: str, description: str = "") -> Campaign:
        try:
            with self._conn.transaction():
                row = self._conn.execute(
                    """
                    INSERT INTO nigredo_leads.campanhas (tenant_id, name, channel, description)
                    VALUES (%s, %s, %s, %s) RETURNING *
                    """,
                    (self._tenant_id, name, channel, description),
                ).fetchone()
        except psycopg.errors.IntegrityError as error:
            raise (map_violation(error) or error) from error
        return Campaign.model_validate(row)

    def get(self, campaign_id: UUID) -> Campaign | None:
        row = self._conn.execute(
            """
            SELECT * FROM nigredo_leads.campanhas
            WHERE tenant_id = %s AND id = %s AND deleted_at IS NULL
            """,
            (self._tenant_id, campaign_id),
        ).fetchone()
        return Campaign.model_validate(row) if row else None

    def set_status(
        self, campaign_id: UUID, status: str, *, expected_version: int
    ) -> Campaign | None:
        row = self._conn.execute(
            """
            UPDATE nigredo_leads.campanhas SET status = %s
            WHERE tenant_id = %s AND id = %s AND version = %s AND deleted_at IS NULL
            RETURNING *
            """,
            (status, self._tenant_id, campaign_id, expected_version),
        ).fetchone()
        return Campaign.model_validate(row) if row else None

    def page(self, *, status: str | None, limit: int) -> list[Campaign]:
        rows = self._conn.execute(
            """
            SELECT * FROM nigredo_leads.campanhas
            WHERE tenant_id = %s AND deleted_at IS NULL AND (%s::text IS NULL OR status = %s)
            ORDER BY created_at DESC, id DESC LIMIT %s
            """,
            (self._tenant_id, status, status, limit),
        ).fetchall()
        return [Campaign.model_validate(row) for row in rows]

    def soft_delete(self, campaign_id: UUID, *, expected_version: int) -> Campaign | None:
        row = self._conn.execute(
            """
            UPDATE nigredo_leads.campanhas SET deleted_at = now()
            WHERE tenant_id = %s AND id = %s AND version = %s AND deleted_at IS NULL
            RETURNING *
            """,
            (self._tenant_id, campaign_id, expected_version),
        ).fetchone()
        return Campaign.model_validate(row) if row else None

    def numbers(self, campaign_id: UUID) -> dict[str, int]:
        """Live leads of the campaign by status."""
        rows = self._conn.execute(
            """
            SELECT status, count(*) AS n FROM nigredo_leads.leads
            WHERE tenant_id = %s AND campanha_id = %s AND deleted_at IS NULL
            GROUP BY status
            """,
            (self._tenant_id, campaign_id),
        ).fetchall()
        return {row["status"]: row["n"] for row in rows}


class InteractionRepository:
    """The lead's timeline: appended, listed, never edited (erasure only blanks content)."""

    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def append(
        self,
        lead_id: UUID,
        *,
        channel: str,
        direction: str,
        kind: str = "message",
        content: str | None = None,
        user_id: UUID | None = None,
        occurred_at: datetime | None = None,
    ) -> Interaction:
        row = self._conn.execute(
            """
            INSERT INTO nigredo_leads.interacoes (
                tenant_id, lead_id, campanha_id, user_id, channel, direction, kind, content,
                occurred_at)
            SELECT l.tenant_id, l.id, l.campanha_id, %(user)s, %(channel)s, %(direction)s,
                   %(kind)s, %(content)s, coalesce(%(at)s, now())
            FROM nigredo_leads.leads AS l
            WHERE l.tenant_id = %(tenant)s AND l.id = %(lead)s AND l.deleted_at IS NULL
            RETURNING *
            """,
            {
                "tenant": self._tenant_id,
                "lead": lead_id,
                "user": user_id,
                "channel": channel,
                "direction": direction,
                "kind": kind,
                "content": content,
                "at": occurred_at,
            },
        ).fetchone()
        return Interaction.model_validate(row) if row else _missing_lead(lead_id)

    def timeline(self, lead_id: UUID, *, limit: int = 100) -> list[Interaction]:
        rows = self._conn.execute(
            """
            SELECT * FROM nigredo_leads.interacoes
            WHERE tenant_id = %s AND lead_id = %s AND deleted_at IS NULL
            ORDER BY occurred_at DESC, id DESC LIMIT %s
            """,
            (self._tenant_id, lead_id, limit),
        ).fetchall()
        return [Interaction.model_validate(row) for row in rows]


def _missing_lead(lead_id: UUID) -> Any:
    from lambdas.leads.errors import LeadNotFound  # noqa: PLC0415

    raise LeadNotFound(f"lead {lead_id} not found")


class MeetingRepository:
    """Meetings; the exclusion constraint refuses overlaps for the same owner."""

    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def _write(self, statement: Any, params: dict[str, Any]) -> Meeting | None:
        try:
            with self._conn.transaction():
                row = self._conn.execute(statement, params).fetchone()
        except psycopg.errors.IntegrityError as error:
            raise (map_violation(error) or error) from error
        return Meeting.model_validate(row) if row else None

    def schedule(
        self,
        lead_id: UUID,
        *,
        owner_user_id: UUID | None,
        scheduled_for: datetime,
        duration_minutes: int,
    ) -> Meeting:
        meeting = self._write(
            """
            INSERT INTO nigredo_leads.agendamentos (
                tenant_id, lead_id, owner_user_id, scheduled_for, duration_minutes)
            SELECT l.tenant_id, l.id, %(owner)s, %(at)s, %(minutes)s
            FROM nigredo_leads.leads AS l
            WHERE l.tenant_id = %(tenant)s AND l.id = %(lead)s AND l.deleted_at IS NULL
            RETURNING *
            """,
            {
                "tenant": self._tenant_id,
                "lead": lead_id,
                "owner": owner_user_id,
                "at": scheduled_for,
                "minutes": duration_minutes,
            },
        )
        return meeting if meeting else _missing_lead(lead_id)

    def reschedule(
        self,
        meeting_id: UUID,
        *,
        scheduled_for: datetime,
        duration_minutes: int,
        expected_version: int,
    ) -> Meeting | None:
        return self._write(
            """
            UPDATE nigredo_leads.agendamentos
            SET scheduled_for = %(at)s, duration_minutes = %(minutes)s
            WHERE tenant_id = %(tenant)s AND id = %(id)s AND version = %(version)s
              AND deleted_at IS NULL AND status IN ('scheduled', 'confirmed')
            RETURNING *
            """,
            {
                "tenant": self._tenant_id,
                "id": meeting_id,
                "at": scheduled_for,
                "minutes": duration_minutes,
                "version": expected_version,
            },
        )

    def set_status(self, meeting_id: UUID, status: str, *, expected_version: int) -> Meeting | None:
        """cancel ('canceled') or complete ('completed') a scheduled or confirmed meeting."""
        return self._write(
            """
            UPDATE nigredo_leads.agendamentos SET status = %(status)s
            WHERE tenant_id = %(tenant)s AND id = %(id)s AND version = %(version)s
              AND deleted_at IS NULL AND status IN ('scheduled', 'confirmed')
            RETURNING *
            """,
            {
                "tenant": self._tenant_id,
                "id": meeting_id,
                "status": status,
                "version": expected_version,
            },
        )

    def get(self, meeting_id: UUID) -> Meeting | None:
        row = self._conn.execute(
            "SELECT * FROM nigredo_leads.agendamentos WHERE tenant_id = %s AND id = %s",
            (self._tenant_id, meeting_id),
        ).fetchone()
        return Meeting.model_validate(row) if row else None

    def time_zone(self) -> str:
        """The tenant's IANA time zone, in which meeting times are shown."""
        row = self._conn.execute(
            "SELECT timezone FROM alquimista_platform.tenants WHERE id = %s", (self._tenant_id,)
        ).fetchone()
        return str(row["timezone"]) if row else "America/Sao_Paulo"
