from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

from lambdas.plans.models import PlanAgent, PlanResponse, PlanSubnucleo
from lambdas.shared.db import Connection, UnitOfWork

_PLAN_COLUMNS = """
    id, slug, name, description, price_monthly, price_yearly, currency, max_users, max_agents,
    max_subnucleos, monthly_token_quota, trial_days, features
"""


class PlanRepository:
    """Active plans with their subnúcleos and agents (global catalog, not tenant-owned)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def list_active(self) -> list[PlanResponse]:
        rows = self._conn.execute(
            f"""
            SELECT {_PLAN_COLUMNS}
            FROM public.subscription_plans
            WHERE is_active
            ORDER BY sort_order, price_monthly, slug
            """
        ).fetchall()
        return self._with_subnucleos(rows)

    def get_active(self, plan_id: UUID) -> PlanResponse | None:
        rows = self._conn.execute(
            f"""
            SELECT {_PLAN_COLUMNS}
            FROM public.subscription_plans
            WHERE id = %s AND is_active
            """,
            (plan_id,),
        ).fetchall()
        plans = self._with_subnucleos(rows)
        return plans[0] if plans else None

    def _with_subnucleos(self, plans: list[dict[str, Any]]) -> list[PlanResponse]:
        if not plans:
            return []
        rows = self._conn.execute(
            """
            SELECT ps.plan_id, s.id AS subnucleo_id, s.slug AS subnucleo_slug,
                   s.name AS subnucleo_name, s.description AS subnucleo_description,
                   s.price_monthly AS subnucleo_price, s.currency AS subnucleo_currency,
                   a.id AS agent_id, a.slug AS agent_slug, a.name AS agent_name,
                   a.category AS agent_category
            FROM public.subscription_plan_subnucleos AS ps
            JOIN public.subnucleos AS s ON s.id = ps.subnucleo_id AND s.is_active
            LEFT JOIN public.subnucleo_agents AS sa ON sa.subnucleo_id = s.id
            LEFT JOIN alquimista_platform.agents AS a
              ON a.id = sa.agent_id AND a.status <> 'retired'
            WHERE ps.plan_id = ANY(%s)
            ORDER BY s.sort_order, s.slug, sa.sort_order, a.slug
            """,
            ([plan["id"] for plan in plans],),
        ).fetchall()
        subnucleos: dict[UUID, dict[UUID, dict[str, Any]]] = defaultdict(dict)
        for row in rows:
            sub = subnucleos[row["plan_id"]].setdefault(
                row["subnucleo_id"],
                {
                    "id": row["subnucleo_id"],
                    "slug": row["subnucleo_slug"],
                    "name": row["subnucleo_name"],
                    "description": row["subnucleo_description"],
                    "price_monthly": row["subnucleo_price"],
                    "currency": row["subnucleo_currency"],
                    "agents": [],
                },
            )
            if row["agent_id"] is not None:
                sub["agents"].append(
                    PlanAgent(
                        id=row["agent_id"],
                        slug=row["agent_slug"],
                        name=row["agent_name"],
                        category=row["agent_category"],
                    )
                )
        return [
            PlanResponse(
                **plan,
                subnucleos=[PlanSubnucleo(**sub) for sub in subnucleos[plan["id"]].values()],
            )
            for plan in plans
        ]


class PlansUnitOfWork(UnitOfWork):
    plans: PlanRepository

    def _on_enter(self) -> None:
        self.plans = PlanRepository(self.conn)
