from __future__ import annotations

from uuid import UUID

from lambdas.billing.models import PlanPrice
from lambdas.shared.db import Connection


class CatalogRepository:
    """What billing needs from the global catalog."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def plan_price(self, plan_id: UUID) -> PlanPrice | None:
        row = self._conn.execute(
            """
            SELECT id, slug, price_monthly, price_yearly, currency
            FROM public.subscription_plans WHERE id = %s AND is_active
            """,
            (plan_id,),
        ).fetchone()
        return PlanPrice(**row) if row else None

    def agent_exists(self, agent_id: UUID) -> bool:
        row = self._conn.execute(
            """
            SELECT 1 FROM alquimista_platform.agents WHERE id = %s AND status <> 'retired'
            """,
            (agent_id,),
        ).fetchone()
        return row is not None

    def subnucleo_exists(self, subnucleo_id: UUID) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM public.subnucleos WHERE id = %s AND is_active", (subnucleo_id,)
        ).fetchone()
        return row is not None
