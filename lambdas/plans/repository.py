from __future__ import annotations

from uuid import UUID

from pydantic import TypeAdapter

from lambdas.plans.models import PlanResponse
from lambdas.shared.db import Connection, UnitOfWork

# One round trip, one row: PostgreSQL builds the JSON array of plans with their subnúcleos and
# agents nested (json, not jsonb: it is only ever printed, so the binary form would be built and
# converted back to text for nothing), and pydantic parses and validates that text in one pass.
# Prices travel as text so that they stay exact decimals.
_PLANS_SQL = """
SELECT coalesce(json_agg(json_build_object(
           'id', p.id, 'slug', p.slug, 'name', p.name, 'description', p.description,
           'price_monthly', p.price_monthly::text, 'price_yearly', p.price_yearly::text,
           'currency', p.currency, 'max_users', p.max_users, 'max_agents', p.max_agents,
           'max_subnucleos', p.max_subnucleos, 'monthly_token_quota', p.monthly_token_quota,
           'trial_days', p.trial_days, 'features', p.features,
           'subnucleos', coalesce((
               SELECT json_agg(
                          json_build_object(
                              'id', s.id, 'slug', s.slug, 'name', s.name,
                              'description', s.description,
                              'price_monthly', s.price_monthly::text, 'currency', s.currency,
                              'agents', coalesce((
                                  SELECT json_agg(
                                             json_build_object(
                                                 'id', a.id, 'slug', a.slug, 'name', a.name,
                                                 'category', a.category)
                                             ORDER BY sa.sort_order, a.slug)
                                  FROM public.subnucleo_agents AS sa
                                  JOIN alquimista_platform.agents AS a
                                    ON a.id = sa.agent_id AND a.status <> 'retired'
                                  WHERE sa.subnucleo_id = s.id
                              ), '[]'::json))
                          ORDER BY s.sort_order, s.slug)
               FROM public.subscription_plan_subnucleos AS ps
               JOIN public.subnucleos AS s ON s.id = ps.subnucleo_id AND s.is_active
               WHERE ps.plan_id = p.id
           ), '[]'::json))
       ORDER BY p.sort_order, p.price_monthly, p.slug), '[]'::json)::text AS plans
FROM public.subscription_plans AS p
WHERE p.is_active AND (%(plan_id)s::uuid IS NULL OR p.id = %(plan_id)s::uuid)
"""

_PLAN_LIST: TypeAdapter[list[PlanResponse]] = TypeAdapter(list[PlanResponse])


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
        row = self._conn.execute(_PLANS_SQL, {"plan_id": plan_id}).fetchone()
        return _PLAN_LIST.validate_json(row["plans"] if row else "[]")


class PlansUnitOfWork(UnitOfWork):
    plans: PlanRepository

    def _on_enter(self) -> None:
        self.plans = PlanRepository(self.conn)
