"""SQL of CSV imports: one row per file with its status, counts and rejection report."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from lambdas.shared.db import Connection


class ImportRepository:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def open(
        self,
        import_id: UUID,
        *,
        object_key: str,
        legal_basis: str,
        campanha_id: UUID | None,
        skip_invalid: bool,
        requested_by: UUID | None,
    ) -> dict[str, Any]:
        row = self._conn.execute(
            """
            INSERT INTO nigredo_leads.lead_imports (
                id, tenant_id, object_key, legal_basis, campanha_id, skip_invalid, requested_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            RETURNING *
            """,
            (
                import_id,
                self._tenant_id,
                object_key,
                legal_basis,
                campanha_id,
                skip_invalid,
                requested_by,
            ),
        ).fetchone()
        if row is None:
            raise RuntimeError("INSERT ... RETURNING returned no row")
        return row

    def get(self, import_id: UUID, *, lock: bool = False) -> dict[str, Any] | None:
        return self._conn.execute(
            "SELECT * FROM nigredo_leads.lead_imports WHERE tenant_id = %s AND id = %s"
            + (" FOR UPDATE" if lock else ""),
            (self._tenant_id, import_id),
        ).fetchone()

    def finish(
        self,
        import_id: UUID,
        *,
        status: str,
        total: int,
        imported: int,
        report: list[dict[str, Any]],
        error: str | None = None,
    ) -> dict[str, Any] | None:
        """Close an import that is still open; None if it was finished already."""
        return self._conn.execute(
            """
            UPDATE nigredo_leads.lead_imports SET
                status = %s, total_rows = %s, imported_rows = %s, rejected_rows = %s,
                report = %s, error = %s, finished_at = now()
            WHERE tenant_id = %s AND id = %s AND status IN ('awaiting_upload', 'processing')
            RETURNING *
            """,
            (
                status,
                total,
                imported,
                len(report),
                Jsonb(report),
                error,
                self._tenant_id,
                import_id,
            ),
        ).fetchone()
