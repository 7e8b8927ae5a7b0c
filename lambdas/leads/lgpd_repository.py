"""SQL of the LGPD records: consent history, the suppression list, data subject requests,
the access export and erasure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, LiteralString
from uuid import UUID

from psycopg.types.json import Jsonb

from lambdas.shared.db import Connection

# Everything held about one lead, as one JSON document (the access/portability export); the
# lead's search_text (054) only repeats its name, company and e-mail.
_EXPORT_SQL = """
SELECT jsonb_build_object(
    'lead', (SELECT to_jsonb(l) - 'tenant_id' - 'search_text' FROM nigredo_leads.leads AS l
             WHERE l.tenant_id = %(tenant)s AND l.id = %(lead)s),
    'interactions', coalesce((SELECT jsonb_agg(to_jsonb(i) - 'tenant_id' ORDER BY i.occurred_at)
                              FROM nigredo_leads.interacoes AS i
                              WHERE i.tenant_id = %(tenant)s AND i.lead_id = %(lead)s), '[]'),
    'meetings', coalesce((SELECT jsonb_agg(to_jsonb(m) - 'tenant_id' ORDER BY m.scheduled_for)
                          FROM nigredo_leads.agendamentos AS m
                          WHERE m.tenant_id = %(tenant)s AND m.lead_id = %(lead)s), '[]'),
    'consents', coalesce((SELECT jsonb_agg(to_jsonb(c) - 'tenant_id' - 'ip_hmac'
                                           ORDER BY c.occurred_at)
                          FROM nigredo_leads.consent_events AS c
                          WHERE c.tenant_id = %(tenant)s AND c.lead_id = %(lead)s), '[]'),
    'submissions', coalesce((SELECT jsonb_agg(to_jsonb(f) - 'tenant_id' ORDER BY f.submitted_at)
                             FROM nigredo_leads.form_submissions AS f
                             WHERE f.tenant_id = %(tenant)s AND f.lead_id = %(lead)s), '[]'),
    'requests', coalesce((SELECT jsonb_agg(to_jsonb(d) - 'tenant_id' ORDER BY d.created_at)
                          FROM nigredo_leads.data_subject_requests AS d
                          WHERE d.tenant_id = %(tenant)s AND d.lead_id = %(lead)s), '[]')
) AS export
"""

# Erasure: every personal field of the lead and of what hangs from it is cleared in one
# statement per table; ids, statuses, dates and campaign links stay, so counts and metrics hold.
_ERASE_STATEMENTS: tuple[LiteralString, ...] = (
    """
    UPDATE nigredo_leads.leads SET
        full_name = NULL, email = NULL, phone = NULL, email_normalized = NULL,
        phone_e164 = NULL, company = NULL, company_tax_id = NULL, job_title = NULL,
        tags = '{}', consent_ip = NULL, consent_source = NULL, metadata = '{}'::jsonb,
        anonymized_at = now()
    WHERE tenant_id = %(tenant)s AND id = %(lead)s
    """,
    """
    UPDATE nigredo_leads.interacoes SET content = NULL, metadata = '{}'::jsonb
    WHERE tenant_id = %(tenant)s AND lead_id = %(lead)s
    """,
    """
    UPDATE nigredo_leads.agendamentos SET notes = NULL, meeting_url = NULL, metadata = '{}'::jsonb
    WHERE tenant_id = %(tenant)s AND lead_id = %(lead)s
    """,
    """
    UPDATE nigredo_leads.consent_events SET ip_hmac = NULL
    WHERE tenant_id = %(tenant)s AND lead_id = %(lead)s AND ip_hmac IS NOT NULL
    """,
    """
    UPDATE nigredo_leads.form_submissions SET
        payload = '{}'::jsonb, consent_text = NULL, source_ip = NULL, user_agent = NULL
    WHERE tenant_id = %(tenant)s AND lead_id = %(lead)s
    """,
    """
    DELETE FROM nigredo_leads.sync_conflicts
    WHERE tenant_id = %(tenant)s
      AND ((entity = 'lead' AND entity_id = %(lead)s)
           OR (entity IN ('interaction', 'meeting')
               AND %(lead)s::text IN (mine ->> 'lead_id', theirs ->> 'lead_id')))
    """,
)


class ConsentRepository:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def record(
        self,
        lead_id: UUID,
        *,
        action: str,
        channel: str,
        purposes: Sequence[str],
        text_version: str | None,
        ip_hmac: str | None,
        recorded_by: UUID | None,
    ) -> dict[str, Any] | None:
        """Append a consent event and set the lead's current consent state from it, in one
        statement; None when the live lead does not exist."""
        return self._conn.execute(
            """
            WITH event AS (
                INSERT INTO nigredo_leads.consent_events (
                    tenant_id, lead_id, action, channel, purposes, text_version, ip_hmac,
                    recorded_by)
                SELECT l.tenant_id, l.id, %(action)s, %(channel)s, %(purposes)s,
                       %(text_version)s, %(ip)s, %(by)s
                FROM nigredo_leads.leads AS l
                WHERE l.tenant_id = %(tenant)s AND l.id = %(lead)s AND l.deleted_at IS NULL
                RETURNING *
            ), lead AS (
                UPDATE nigredo_leads.leads AS l SET
                    consent_status = e.action,
                    consent_purposes = CASE WHEN e.action = 'granted' THEN e.purposes
                                            ELSE '{}' END,
                    consent_given_at = CASE WHEN e.action = 'granted' THEN e.occurred_at
                                            ELSE l.consent_given_at END,
                    consent_withdrawn_at = CASE WHEN e.action = 'withdrawn' THEN e.occurred_at
                                                ELSE l.consent_withdrawn_at END,
                    consent_text_version = coalesce(e.text_version, l.consent_text_version),
                    consent_source = e.channel
                FROM event AS e WHERE l.id = e.lead_id
            )
            SELECT * FROM event
            """,
            {
                "tenant": self._tenant_id,
                "lead": lead_id,
                "action": action,
                "channel": channel,
                "purposes": list(purposes),
                "text_version": text_version,
                "ip": ip_hmac,
                "by": recorded_by,
            },
        ).fetchone()

    def history(self, lead_id: UUID) -> list[dict[str, Any]]:
        """The lead's consent events, oldest first (append-only: nothing here is ever edited
        but the IP digest erasure clears)."""
        return self._conn.execute(
            """
            SELECT * FROM nigredo_leads.consent_events
            WHERE tenant_id = %s AND lead_id = %s ORDER BY occurred_at, created_at
            """,
            (self._tenant_id, lead_id),
        ).fetchall()


class SuppressionRepository:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def add(
        self, digests: Sequence[tuple[str, str]], *, reason: str, added_by: UUID | None
    ) -> None:
        for kind, digest in digests:
            self._conn.execute(
                """
                INSERT INTO nigredo_leads.blocklist (tenant_id, kind, value_hmac, reason, added_by)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (tenant_id, kind, value_hmac) DO NOTHING
                """,
                (self._tenant_id, kind, digest, reason, added_by),
            )

    def suppressed(self, digests: Sequence[str]) -> set[str]:
        """Which of these digests are suppressed (unexpired), whatever their kind."""
        rows = self._conn.execute(
            """
            SELECT value_hmac FROM nigredo_leads.blocklist
            WHERE tenant_id = %s AND value_hmac = ANY(%s)
              AND (expires_at IS NULL OR expires_at > now())
            """,
            (self._tenant_id, list(digests)),
        ).fetchall()
        return {row["value_hmac"] for row in rows}

    def matches(self, digests: Sequence[tuple[str, str]]) -> list[str]:
        """The kinds among ``digests`` that are suppressed (unexpired)."""
        if not digests:
            return []
        rows = self._conn.execute(
            """
            SELECT DISTINCT b.kind FROM nigredo_leads.blocklist AS b
            JOIN unnest(%s::text[], %s::text[]) AS d (kind, digest)
              ON b.kind = d.kind AND b.value_hmac = d.digest
            WHERE b.tenant_id = %s AND (b.expires_at IS NULL OR b.expires_at > now())
            ORDER BY b.kind
            """,
            ([k for k, _ in digests], [d for _, d in digests], self._tenant_id),
        ).fetchall()
        return [row["kind"] for row in rows]


class DataSubjectRequestRepository:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def open(
        self, lead_id: UUID, *, kind: str, channel: str, requested_by: UUID | None
    ) -> dict[str, Any]:
        row = self._conn.execute(
            """
            INSERT INTO nigredo_leads.data_subject_requests (
                tenant_id, lead_id, kind, channel, requested_by, due_at)
            VALUES (%s, %s, %s, %s, %s, now())
            RETURNING *
            """,
            (self._tenant_id, lead_id, kind, channel, requested_by),
        ).fetchone()
        if row is None:
            raise RuntimeError("INSERT ... RETURNING returned no row")
        return row

    def complete(self, request_id: UUID, *, outcome: dict[str, Any]) -> dict[str, Any] | None:
        return self._conn.execute(
            """
            UPDATE nigredo_leads.data_subject_requests
            SET status = 'completed', completed_at = now(), outcome = %s
            WHERE tenant_id = %s AND id = %s AND status IN ('open', 'in_progress')
            RETURNING *
            """,
            (Jsonb(outcome), self._tenant_id, request_id),
        ).fetchone()

    def get(self, request_id: UUID) -> dict[str, Any] | None:
        return self._conn.execute(
            """
            SELECT * FROM nigredo_leads.data_subject_requests WHERE tenant_id = %s AND id = %s
            """,
            (self._tenant_id, request_id),
        ).fetchone()

    def page(self, *, status: str | None, limit: int) -> list[dict[str, Any]]:
        return self._conn.execute(
            """
            SELECT * FROM nigredo_leads.data_subject_requests
            WHERE tenant_id = %s AND (%s::text IS NULL OR status = %s)
            ORDER BY due_at, id LIMIT %s
            """,
            (self._tenant_id, status, status, limit),
        ).fetchall()

    def overdue_soon(self, *, within_hours: int) -> list[dict[str, Any]]:
        """Open requests due within ``within_hours`` (or already late), oldest deadline first."""
        return self._conn.execute(
            """
            SELECT * FROM nigredo_leads.data_subject_requests
            WHERE tenant_id = %s AND status IN ('open', 'in_progress')
              AND due_at < now() + make_interval(hours => %s)
            ORDER BY due_at
            """,
            (self._tenant_id, within_hours),
        ).fetchall()

    def export(self, lead_id: UUID) -> dict[str, Any]:
        row = self._conn.execute(
            _EXPORT_SQL, {"tenant": self._tenant_id, "lead": lead_id}
        ).fetchone()
        return row["export"] if row else {}

    def erase(self, lead_id: UUID) -> None:
        """Anonymise the lead and everything that hangs from it (see ``_ERASE_STATEMENTS``)."""
        params = {"tenant": self._tenant_id, "lead": lead_id}
        for statement in _ERASE_STATEMENTS:
            self._conn.execute(statement, params)
