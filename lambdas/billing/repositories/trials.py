from __future__ import annotations

from datetime import datetime
from uuid import UUID

from lambdas.billing.models import TrialResponse
from lambdas.billing.repositories import one
from lambdas.shared.db import Connection

# 'expired' as soon as the trial is no longer usable, before the job marks it so.
_TRIAL_SELECT = """
    SELECT t.id, t.agent_id, t.subnucleo_id,
           CASE WHEN t.status = 'active' AND NOT public.trial_is_usable_v1(t)
                THEN 'expired' ELSE t.status END AS status,
           t.started_at, t.expires_at, t.max_usage, t.usage_count,
           greatest(t.max_usage - t.usage_count, 0) AS remaining_usage
    FROM public.trials AS t
"""


class TrialRepository:
    """The tenant's trials; every statement filters by the tenant."""

    def __init__(self, conn: Connection, tenant_id: UUID | None) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def list_all(self) -> list[TrialResponse]:
        rows = self._conn.execute(
            _TRIAL_SELECT + " WHERE t.tenant_id = %s ORDER BY t.started_at DESC, t.id",
            (self._tenant_id,),
        ).fetchall()
        return [TrialResponse(**row) for row in rows]

    def get(self, trial_id: UUID) -> TrialResponse | None:
        row = self._conn.execute(
            _TRIAL_SELECT + " WHERE t.tenant_id = %s AND t.id = %s", (self._tenant_id, trial_id)
        ).fetchone()
        return TrialResponse(**row) if row else None

    def exists_for(self, *, agent_id: UUID | None, subnucleo_id: UUID | None) -> bool:
        row = self._conn.execute(
            """
            SELECT 1 FROM public.trials
            WHERE tenant_id = %s
              AND (agent_id = %s OR subnucleo_id = %s)
            """,
            (self._tenant_id, agent_id, subnucleo_id),
        ).fetchone()
        return row is not None

    def create(
        self,
        *,
        user_id: UUID,
        agent_id: UUID | None,
        subnucleo_id: UUID | None,
        expires_at: datetime,
        max_usage: int,
    ) -> TrialResponse:
        row = one(
            self._conn.execute(
                """
                INSERT INTO public.trials
                    (tenant_id, user_id, agent_id, subnucleo_id, expires_at, max_usage)
                VALUES (%s, %s, %s, %s, %s, %s)
                RETURNING id
                """,
                (self._tenant_id, user_id, agent_id, subnucleo_id, expires_at, max_usage),
            ).fetchone()
        )
        return TrialResponse(
            **one(
                self._conn.execute(
                    _TRIAL_SELECT + " WHERE t.tenant_id = %s AND t.id = %s",
                    (self._tenant_id, row["id"]),
                ).fetchone()
            )
        )

    def record_use(self, trial_id: UUID) -> TrialResponse | None:
        """Count one use of a usable trial (``trial_is_usable_v1``) in one guarded statement;
        None when the trial is missing or not usable."""
        row = self._conn.execute(
            """
            UPDATE public.trials AS t SET usage_count = t.usage_count + 1
            WHERE t.tenant_id = %s AND t.id = %s AND public.trial_is_usable_v1(t)
            RETURNING t.id
            """,
            (self._tenant_id, trial_id),
        ).fetchone()
        return self.get(trial_id) if row else None

    def expire_all(self) -> int:
        """Run ``public.expire_trials()`` across every tenant; returns how many expired."""
        row = one(self._conn.execute("SELECT public.expire_trials() AS expired").fetchone())
        return int(row["expired"])
