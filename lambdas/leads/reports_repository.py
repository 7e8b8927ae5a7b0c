"""What the tenant's reports read: the facts of its processing record (Art. 37)."""

from __future__ import annotations

from uuid import UUID

from lambdas.shared.db import Connection


class ProcessingFacts:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def legal_bases(self) -> dict[str, int]:
        """Live leads by legal basis."""
        rows = self._conn.execute(
            """
            SELECT legal_basis, count(*) AS n FROM nigredo_leads.leads
            WHERE tenant_id = %s AND deleted_at IS NULL GROUP BY legal_basis
            """,
            (self._tenant_id,),
        ).fetchall()
        return {row["legal_basis"]: int(row["n"]) for row in rows}

    def consent_purposes(self) -> list[str]:
        """Every purpose a consent of the tenant's leads was recorded for."""
        rows = self._conn.execute(
            """
            SELECT DISTINCT purpose FROM nigredo_leads.consent_events,
                 unnest(purposes) AS purpose
            WHERE tenant_id = %s ORDER BY purpose
            """,
            (self._tenant_id,),
        ).fetchall()
        return [row["purpose"] for row in rows]
