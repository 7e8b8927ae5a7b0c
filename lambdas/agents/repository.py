from __future__ import annotations

from typing import Any
from uuid import UUID

from lambdas.agents.models import (
    ActivationResponse,
    ActiveAgent,
    AgentResponse,
    EntitlementSource,
)
from lambdas.shared.db import Connection
from lambdas.shared.gate import GatedUnitOfWork

# An agent's columns with the slugs of its subnúcleos (``a`` is alquimista_platform.agents).
_AGENT_COLUMNS = """
    a.id, a.slug, a.name, a.description, a.category, a.status, a.version, a.requires_approval,
    coalesce(
        (SELECT array_agg(s.slug ORDER BY s.sort_order, s.slug)
         FROM public.subnucleo_agents AS sa
         JOIN public.subnucleos AS s ON s.id = sa.subnucleo_id
         WHERE sa.agent_id = a.id),
        '{}'
    ) AS subnucleos
"""

_AGENT_SELECT = f"""
    SELECT {_AGENT_COLUMNS}
    FROM alquimista_platform.agents AS a
"""


def _agent(row: dict[str, Any]) -> AgentResponse:
    return AgentResponse(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        description=row["description"],
        category=row["category"],
        status=row["status"],
        version=row["version"],
        requires_approval=row["requires_approval"],
        subnucleos=row["subnucleos"],
    )


class AgentCatalogRepository:
    """The agent catalog (global, not tenant-owned); retired agents are never returned."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def page(
        self, *, category: str | None, subnucleo: str | None, after_slug: str | None, limit: int
    ) -> list[AgentResponse]:
        """Up to ``limit`` agents ordered by slug, after ``after_slug`` (keyset pagination)."""
        rows = self._conn.execute(
            _AGENT_SELECT
            + """
            WHERE a.status <> 'retired'
              AND (%(category)s::text IS NULL OR a.category = %(category)s)
              AND (%(subnucleo)s::text IS NULL OR EXISTS (
                    SELECT 1 FROM public.subnucleo_agents AS sa
                    JOIN public.subnucleos AS s ON s.id = sa.subnucleo_id
                    WHERE sa.agent_id = a.id AND s.slug = %(subnucleo)s))
              AND (%(after)s::text IS NULL OR a.slug > %(after)s)
            ORDER BY a.slug
            LIMIT %(limit)s
            """,
            {"category": category, "subnucleo": subnucleo, "after": after_slug, "limit": limit},
        ).fetchall()
        return [_agent(row) for row in rows]

    def get(self, agent_id: UUID) -> AgentResponse | None:
        row = self._conn.execute(
            _AGENT_SELECT + " WHERE a.id = %s AND a.status <> 'retired'", (agent_id,)
        ).fetchone()
        return _agent(row) if row else None


class ActivationRepository:
    """The tenant's entitlements and activations; every statement filters by the tenant."""

    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def entitlement(self, agent_id: UUID) -> EntitlementSource | None:
        """'plan' if a live subscription's plan holds a subnúcleo with the agent, else 'trial'
        if a usable trial covers the agent or one of its subnúcleos, else None."""
        row = self._conn.execute(
            """
            SELECT CASE
                WHEN EXISTS (
                    SELECT 1
                    FROM public.subscriptions AS s
                    JOIN public.subscription_plan_subnucleos AS ps ON ps.plan_id = s.plan_id
                    JOIN public.subnucleo_agents AS sa ON sa.subnucleo_id = ps.subnucleo_id
                    WHERE s.tenant_id = %(tenant)s
                      AND public.subscription_is_live_v1(s.status)
                      AND sa.agent_id = %(agent)s
                ) THEN 'plan'
                WHEN EXISTS (
                    SELECT 1
                    FROM public.trials AS t
                    WHERE t.tenant_id = %(tenant)s
                      AND public.trial_is_usable_v1(t)
                      AND (t.agent_id = %(agent)s OR t.subnucleo_id IN (
                            SELECT subnucleo_id FROM public.subnucleo_agents
                            WHERE agent_id = %(agent)s))
                ) THEN 'trial'
            END AS source
            """,
            {"tenant": self._tenant_id, "agent": agent_id},
        ).fetchone()
        return row["source"] if row else None

    def get(self, agent_id: UUID) -> ActivationResponse | None:
        row = self._conn.execute(
            """
            SELECT aa.agent_id, aa.status, ta.source, aa.activated_at, aa.activated_by,
                   aa.deactivated_at
            FROM alquimista_platform.agent_activations AS aa
            LEFT JOIN public.tenant_agents AS ta
              ON ta.tenant_id = aa.tenant_id AND ta.agent_id = aa.agent_id
            WHERE aa.tenant_id = %s AND aa.agent_id = %s
            """,
            (self._tenant_id, agent_id),
        ).fetchone()
        return _activation(row) if row else None

    def activate(
        self, agent_id: UUID, *, actor_id: UUID, source: EntitlementSource
    ) -> ActivationResponse:
        return self._set(agent_id, active=True, source=source, actor_id=actor_id)

    def deactivate(self, agent_id: UUID) -> ActivationResponse:
        return self._set(agent_id, active=False, source=None, actor_id=None)

    def _set(
        self,
        agent_id: UUID,
        *,
        active: bool,
        source: EntitlementSource | None,
        actor_id: UUID | None,
    ) -> ActivationResponse:
        # the one writer of tenant_agents and agent_activations (migration 023)
        row = self._conn.execute(
            """
            SELECT * FROM alquimista_platform.set_agent_activation_v1(
                %(tenant)s, %(agent)s, %(active)s, %(source)s, %(actor)s)
            """,
            {
                "tenant": self._tenant_id,
                "agent": agent_id,
                "active": active,
                "source": source,
                "actor": actor_id,
            },
        ).fetchone()
        return _activation(_required(row))

    def list_active(self) -> list[ActiveAgent]:
        rows = self._conn.execute(
            f"""
            SELECT {_AGENT_COLUMNS}, ta.source, aa.activated_at, aa.activated_by
            FROM alquimista_platform.agent_activations AS aa
            JOIN alquimista_platform.agents AS a ON a.id = aa.agent_id
            LEFT JOIN public.tenant_agents AS ta
              ON ta.tenant_id = aa.tenant_id AND ta.agent_id = aa.agent_id
            WHERE aa.tenant_id = %s AND aa.status = 'active' AND a.status <> 'retired'
            ORDER BY a.slug
            """,
            (self._tenant_id,),
        ).fetchall()
        return [
            ActiveAgent(
                agent=_agent(row),
                source=row["source"],
                activated_at=row["activated_at"],
                activated_by=row["activated_by"],
            )
            for row in rows
        ]


def _required(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        raise LookupError("the statement returned no row")
    return row


def _activation(row: dict[str, Any]) -> ActivationResponse:
    return ActivationResponse(
        agent_id=row["agent_id"],
        status="active" if row["status"] == "active" else "deactivated",
        source=row["source"] if row["status"] == "active" else None,
        activated_at=row["activated_at"],
        activated_by=row["activated_by"],
        deactivated_at=row["deactivated_at"],
    )


class AgentsUnitOfWork(GatedUnitOfWork):
    catalog: AgentCatalogRepository
    activations: ActivationRepository

    def _on_enter(self) -> None:
        if self.tenant_id is None:
            raise RuntimeError("the agents unit of work needs a tenant")
        self.catalog = AgentCatalogRepository(self.conn)
        self.activations = ActivationRepository(self.conn, self.tenant_id)
