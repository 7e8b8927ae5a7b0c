from __future__ import annotations

from typing import Any
from uuid import UUID

from lambdas.plans.models import PlanResponse
from lambdas.shared.db import Connection, UnitOfWork

# One round trip: each plan with its subnúcleos and their agents nested by PostgreSQL (prices
# travel as text so that they stay exact decimals).
_PLANS_SQL = """
SELECT p.id, p.slug, p.name, p.description, p.price_monthly, p.price_yearly, p.currency,
       p.max_users, p.max_agents, p.max_subnucleos, p.monthly_token_quota, p.trial_days,
       p.features,
       coalesce((
           SELECT jsonb_agg(
                      jsonb_build_object(
                          'id', s.id, 'slug', s.slug, 'name', s.name,
                          'description', s.description,
                          'price_monthly', s.price_monthly::text, 'currency', s.currency,
                          'agents', coalesce((
                              SELECT jsonb_agg(
                                         jsonb_build_object(
                                             'id', a.id, 'slug', a.slug, 'name', a.name,
                                             'category', a.category)
                                         ORDER BY sa.sort_order, a.slug)
                              FROM public.subnucleo_agents AS sa
                              JOIN alquimista_platform.agents AS a
                                ON a.id = sa.agent_id AND a.status <> 'retired'
                              WHERE sa.subnucleo_id = s.id
                          ), '[]'::jsonb))
                      ORDER BY s.sort_order, s.slug)
           FROM public.subscription_plan_subnucleos AS ps
           JOIN public.subnucleos AS s ON s.id = ps.subnucleo_id AND s.is_active
           WHERE ps.plan_id = p.id
       ), '[]'::jsonb) AS subnucleos
FROM public.subscription_plans AS p
WHERE p.is_active AND (%(plan_id)s::uuid IS NULL OR p.id = %(plan_id)s::uuid)
ORDER BY p.sort_order, p.price_monthly, p.slug
"""


class PlanRepository:
    """Active plans with their subnúcleos and agents (global catalog, not tenant-owned)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def list_active(self) -> list[PlanResponse]:
        return self._plans(None)

    def get_active(self, plan_id: UUID) -> PlanResponse | None:
        plans = self._plans(plan_id)
        return plans[0] if plans else None

    def _plans(self, plan_id: UUID | None) -> list[PlanResponse]:
        rows: list[dict[str, Any]] = self._conn.execute(_PLANS_SQL, {"plan_id": plan_id}).fetchall()
        return [PlanResponse.model_validate(row) for row in rows]


class PlansUnitOfWork(UnitOfWork):
    plans: PlanRepository

    def _on_enter(self) -> None:
        self.plans = PlanRepository(self.conn)
