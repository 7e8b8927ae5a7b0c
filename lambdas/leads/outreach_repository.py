"""SQL of outreach (the lead's contactability, the once-per-key claim) and the SES sender."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from lambdas.shared.db import Connection


@dataclass(frozen=True)
class OutreachTarget:
    """What decides whether a lead may be contacted (read under a row lock)."""

    lead_id: UUID
    email: str | None
    phone: str | None
    status: str
    legal_basis: str
    consent_status: str
    consent_purposes: tuple[str, ...]


@dataclass(frozen=True)
class OutreachRecord:
    id: UUID
    lead_id: UUID
    idempotency_key: str
    purpose: str
    status: str
    provider_message_id: str | None
    interaction_id: UUID | None
    evaluation_id: UUID | None
    sent_at: datetime | None


def _record(row: dict[str, Any]) -> OutreachRecord:
    return OutreachRecord(
        id=row["id"],
        lead_id=row["lead_id"],
        idempotency_key=row["idempotency_key"],
        purpose=row["purpose"],
        status=row["status"],
        provider_message_id=row["provider_message_id"],
        interaction_id=row["interaction_id"],
        evaluation_id=row["evaluation_id"],
        sent_at=row["sent_at"],
    )


class OutreachRepository:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def target(self, lead_id: UUID) -> OutreachTarget | None:
        """The live lead's contact state, locked against a concurrent consent change until the
        transaction ends (a withdrawal committed first is seen)."""
        row = self._conn.execute(
            """
            SELECT id, email_normalized, phone_e164, status, legal_basis, consent_status,
                   consent_purposes
            FROM nigredo_leads.leads
            WHERE tenant_id = %s AND id = %s AND deleted_at IS NULL AND anonymized_at IS NULL
            FOR SHARE
            """,
            (self._tenant_id, lead_id),
        ).fetchone()
        if row is None:
            return None
        return OutreachTarget(
            lead_id=row["id"],
            email=row["email_normalized"],
            phone=row["phone_e164"],
            status=row["status"],
            legal_basis=row["legal_basis"],
            consent_status=row["consent_status"],
            consent_purposes=tuple(row["consent_purposes"]),
        )

    def by_key(self, idempotency_key: str) -> OutreachRecord | None:
        row = self._conn.execute(
            """
            SELECT * FROM nigredo_leads.outreach_messages
            WHERE tenant_id = %s AND idempotency_key = %s
            """,
            (self._tenant_id, idempotency_key),
        ).fetchone()
        return _record(row) if row else None

    def claim(
        self,
        lead_id: UUID,
        *,
        idempotency_key: str,
        purpose: str,
        evaluation_id: UUID,
        requested_by: UUID | None,
    ) -> OutreachRecord | None:
        """Claim the key for this send; None if another request holds it (the unique key
        decides a race)."""
        row = self._conn.execute(
            """
            INSERT INTO nigredo_leads.outreach_messages (
                tenant_id, lead_id, idempotency_key, purpose, evaluation_id, requested_by)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
            RETURNING *
            """,
            (self._tenant_id, lead_id, idempotency_key, purpose, evaluation_id, requested_by),
        ).fetchone()
        return _record(row) if row else None

    def release(self, outreach_id: UUID) -> None:
        """Give a claim back when the e-mail did not leave, so the key can be retried."""
        self._conn.execute(
            """
            DELETE FROM nigredo_leads.outreach_messages
            WHERE tenant_id = %s AND id = %s AND status = 'sending'
            """,
            (self._tenant_id, outreach_id),
        )

    def mark_sent(
        self, outreach_id: UUID, *, provider_message_id: str, interaction_id: UUID
    ) -> OutreachRecord:
        row = self._conn.execute(
            """
            UPDATE nigredo_leads.outreach_messages SET
                status = 'sent', provider_message_id = %s, interaction_id = %s, sent_at = now()
            WHERE tenant_id = %s AND id = %s AND status = 'sending'
            RETURNING *
            """,
            (provider_message_id, interaction_id, self._tenant_id, outreach_id),
        ).fetchone()
        if row is None:
            raise RuntimeError(f"outreach {outreach_id} was not waiting to be sent")
        return _record(row)

    def mark_contacted(self, lead_id: UUID) -> None:
        self._conn.execute(
            """
            UPDATE nigredo_leads.leads SET
                last_contacted_at = now(),
                status = CASE WHEN status = 'new' THEN 'contacted' ELSE status END
            WHERE tenant_id = %s AND id = %s
            """,
            (self._tenant_id, lead_id),
        )


class SesClient(Protocol):
    def send_email(self, **kwargs: Any) -> Any: ...


class SesEmailSender:
    """Sends one plain-text e-mail through SES v2 and returns SES's message id."""

    def __init__(self, client: SesClient, *, sender: str) -> None:
        self._client = client
        self._sender = sender

    def send(self, *, to: str, subject: str, body: str) -> str:
        response = self._client.send_email(
            FromEmailAddress=self._sender,
            Destination={"ToAddresses": [to]},
            Content={
                "Simple": {
                    "Subject": {"Data": subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": body, "Charset": "UTF-8"}},
                }
            },
        )
        return str(response["MessageId"])
