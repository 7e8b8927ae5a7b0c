"""SQL of public capture forms: definitions, the public lookup by id, submissions, the per-IP
rate limit (``nigredo_leads.rate_limits``) and the provider webhook log."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from lambdas.leads.forms_models import FormDefinition, FormDefinitionIn
from lambdas.shared.db import Connection

PUBLIC_FORM_SETTING = "app.public_form_id"


class FormRepository:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def create(self, form: FormDefinitionIn, *, created_by: UUID | None) -> FormDefinition:
        row = self._conn.execute(
            """
            INSERT INTO nigredo_leads.lead_forms (
                tenant_id, name, fields, required_fields, consent_text, consent_text_version,
                purposes, campanha_id, max_per_ip_per_hour, created_by)
            VALUES (%(tenant)s, %(name)s, %(fields)s, %(required_fields)s, %(consent_text)s,
                    %(consent_text_version)s, %(purposes)s, %(campanha_id)s,
                    %(max_per_ip_per_hour)s, %(by)s)
            RETURNING *
            """,
            form.model_dump() | {"tenant": self._tenant_id, "by": created_by},
        ).fetchone()
        return FormDefinition.model_validate(row)

    def get(self, form_id: UUID) -> FormDefinition | None:
        row = self._conn.execute(
            "SELECT * FROM nigredo_leads.lead_forms WHERE tenant_id = %s AND id = %s",
            (self._tenant_id, form_id),
        ).fetchone()
        return FormDefinition.model_validate(row) if row else None


def find_public_form(conn: Connection, form_id: UUID) -> FormDefinition | None:
    """The active form with this id, read before its tenant is known (the
    ``public_form_lookup`` policy admits exactly the id set here, nothing else)."""
    conn.execute("SELECT set_config(%s, %s, true)", (PUBLIC_FORM_SETTING, str(form_id)))
    row = conn.execute(
        "SELECT * FROM nigredo_leads.lead_forms WHERE id = %s AND active", (form_id,)
    ).fetchone()
    return FormDefinition.model_validate(row) if row else None


class SubmissionRepository:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def record(
        self,
        form: FormDefinition,
        *,
        lead_id: UUID | None,
        payload: dict[str, Any],
        status: str,
        user_agent: str | None,
    ) -> UUID:
        row = self._conn.execute(
            """
            INSERT INTO nigredo_leads.form_submissions (
                tenant_id, lead_id, form_key, form_id, payload, consent_given, consent_text,
                consent_text_version, user_agent, status, processed_at)
            VALUES (%s, %s, %s, %s, %s, true, %s, %s, %s, %s, now())
            RETURNING id
            """,
            (
                self._tenant_id,
                lead_id,
                str(form.id),
                form.id,
                Jsonb(payload),
                form.consent_text,
                form.consent_text_version,
                user_agent,
                status,
            ),
        ).fetchone()
        if row is None:
            raise RuntimeError("INSERT ... RETURNING returned no row")
        return UUID(str(row["id"]))


class TenantRateLimitRepository:
    """Fixed-window counters per tenant (``nigredo_leads.rate_limits``)."""

    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def take(self, bucket: str, *, window_s: int, max_count: int) -> bool:
        """Count one request in the current window if it is under ``max_count`` (one guarded
        statement); False when the window is full. Ended windows of the bucket go first."""
        self._conn.execute(
            """
            DELETE FROM nigredo_leads.rate_limits
            WHERE tenant_id = %s AND bucket = %s
              AND window_start < now() - make_interval(secs => window_s)
            """,
            (self._tenant_id, bucket),
        )
        row = self._conn.execute(
            """
            INSERT INTO nigredo_leads.rate_limits AS r (
                tenant_id, bucket, window_start, window_s, max_count, count)
            VALUES (%(tenant)s, %(bucket)s,
                    to_timestamp(floor(extract(epoch FROM now()) / %(window)s) * %(window)s),
                    %(window)s, %(max)s, 1)
            ON CONFLICT (tenant_id, bucket, window_start)
            DO UPDATE SET count = r.count + 1 WHERE r.count < r.max_count
            RETURNING count
            """,
            {"tenant": self._tenant_id, "bucket": bucket, "window": window_s, "max": max_count},
        ).fetchone()
        return row is not None


class WebhookLogRepository:
    """Every inbound provider webhook, signature valid or not: the payload's SHA-256 and the
    outcome, never the payload itself (it holds personal data)."""

    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def record(
        self,
        *,
        source: str,
        event_type: str,
        external_id: str | None,
        signature_valid: bool,
        payload_sha256: str,
        status: str,
        response_status: int,
        error: str | None = None,
    ) -> UUID | None:
        """The log row's id; None when this provider delivery was logged already (its
        external id is unique per tenant and source)."""
        row = self._conn.execute(
            """
            INSERT INTO nigredo_leads.webhook_logs (
                tenant_id, source, event_type, external_id, payload, signature_valid,
                payload_sha256, status, response_status, error, processed_at)
            VALUES (%s, %s, %s, %s, '{}'::jsonb, %s, %s, %s, %s, %s,
                    CASE WHEN %s IN ('processed', 'failed', 'ignored') THEN now() END)
            ON CONFLICT (tenant_id, source, external_id) WHERE external_id IS NOT NULL
            DO NOTHING
            RETURNING id
            """,
            (
                self._tenant_id,
                source,
                event_type,
                external_id,
                signature_valid,
                payload_sha256,
                status,
                response_status,
                error,
                status,
            ),
        ).fetchone()
        return UUID(str(row["id"])) if row else None
