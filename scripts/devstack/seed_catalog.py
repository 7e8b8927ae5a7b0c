"""The dev catalog: three plans, four subnúcleos and ten agents, with stable uuid5 ids, and the
subscriptions of the dev tenants. Idempotent: running it again updates rows in place.

``seed_catalog`` needs only the schema; ``seed_dev_subscriptions`` also needs the dev tenants
(it skips tenants that do not exist yet). Both run as the owner; tenant-owned rows are written
with the tenant setting of their own tenant, so they also work under forced RLS.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb

from lambdas.shared.db import set_tenant
from scripts.devstack.identities import TENANTS

_NAMESPACE: Final = uuid.UUID("0b8a4f7e-2c1d-4e55-8f3b-6a9d2e1c7b40")


def catalog_id(kind: str, slug: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{kind}:{slug}")


@dataclass(frozen=True)
class CatalogAgent:
    slug: str
    name: str
    category: str
    subnucleo: str
    description: str
    requires_approval: bool = False

    @property
    def id(self) -> uuid.UUID:
        return catalog_id("agent", self.slug)


@dataclass(frozen=True)
class CatalogSubnucleo:
    slug: str
    name: str
    description: str
    price_monthly: Decimal
    sort_order: int

    @property
    def id(self) -> uuid.UUID:
        return catalog_id("subnucleo", self.slug)


@dataclass(frozen=True)
class CatalogPlan:
    slug: str
    name: str
    description: str
    price_monthly: Decimal
    price_yearly: Decimal
    subnucleos: tuple[str, ...]
    max_users: int | None
    max_agents: int | None
    monthly_token_quota: int
    trial_days: int
    features: tuple[str, ...]
    sort_order: int

    @property
    def id(self) -> uuid.UUID:
        return catalog_id("plan", self.slug)


SUBNUCLEOS: Final = (
    CatalogSubnucleo(
        "vendas",
        "Nigredo: Prospecção e Vendas",
        "Prospecção, qualificação e agendamento",
        Decimal("497.00"),
        10,
    ),
    CatalogSubnucleo(
        "atendimento",
        "Atendimento ao Cliente",
        "Respostas, triagem e pesquisas de satisfação",
        Decimal("397.00"),
        20,
    ),
    CatalogSubnucleo(
        "marketing",
        "Marketing e Conteúdo",
        "Conteúdo, redes sociais e campanhas",
        Decimal("297.00"),
        30,
    ),
    CatalogSubnucleo(
        "financeiro", "Financeiro e Cobrança", "Cobrança e conciliação", Decimal("297.00"), 40
    ),
)

AGENTS: Final = (
    CatalogAgent("sdr-prospector", "SDR Prospector", "sales", "vendas", "Encontra e aborda leads"),
    CatalogAgent("lead-qualifier", "Qualificador de Leads", "sales", "vendas", "Pontua leads"),
    CatalogAgent("meeting-scheduler", "Agendador de Reuniões", "sales", "vendas", "Marca reuniões"),
    CatalogAgent(
        "proposal-writer",
        "Redator de Propostas",
        "sales",
        "vendas",
        "Escreve propostas",
        requires_approval=True,
    ),
    CatalogAgent(
        "support-responder", "Respondedor de Suporte", "support", "atendimento", "Responde"
    ),
    CatalogAgent("ticket-triage", "Triagem de Chamados", "support", "atendimento", "Classifica"),
    CatalogAgent(
        "satisfaction-survey", "Pesquisa de Satisfação", "support", "atendimento", "Mede NPS"
    ),
    CatalogAgent(
        "content-writer", "Redator de Conteúdo", "marketing", "marketing", "Escreve posts"
    ),
    CatalogAgent(
        "social-planner", "Planejador de Redes Sociais", "marketing", "marketing", "Planeja"
    ),
    CatalogAgent(
        "invoice-collector",
        "Cobrador de Faturas",
        "finance",
        "financeiro",
        "Cobra faturas",
        requires_approval=True,
    ),
)

PLANS: Final = (
    CatalogPlan(
        "starter",
        "Starter",
        "Atendimento automatizado para começar",
        Decimal("297.00"),
        Decimal("2970.00"),
        ("atendimento",),
        max_users=5,
        max_agents=3,
        monthly_token_quota=1_000_000,
        trial_days=14,
        features=("email support",),
        sort_order=10,
    ),
    CatalogPlan(
        "professional",
        "Professional",
        "Vendas e atendimento",
        Decimal("797.00"),
        Decimal("7970.00"),
        ("vendas", "atendimento"),
        max_users=20,
        max_agents=8,
        monthly_token_quota=5_000_000,
        trial_days=14,
        features=("email support", "approvals"),
        sort_order=20,
    ),
    CatalogPlan(
        "enterprise",
        "Enterprise",
        "Todos os subnúcleos",
        Decimal("1497.00"),
        Decimal("14970.00"),
        ("vendas", "atendimento", "marketing", "financeiro"),
        max_users=None,
        max_agents=None,
        monthly_token_quota=20_000_000,
        trial_days=30,
        features=("priority support", "approvals", "sso"),
        sort_order=30,
    ),
)

# Which plan each dev tenant is on.
DEV_SUBSCRIPTIONS: Final = {"acme": "professional", "globex": "starter"}


def find_plan(slug: str) -> CatalogPlan:
    return next(plan for plan in PLANS if plan.slug == slug)


def find_agent(slug: str) -> CatalogAgent:
    return next(agent for agent in AGENTS if agent.slug == slug)


def find_subnucleo(slug: str) -> CatalogSubnucleo:
    return next(sub for sub in SUBNUCLEOS if sub.slug == slug)


def seed_catalog(conninfo: str) -> None:
    """Insert or update the dev plans, subnúcleos and agents; running it twice changes nothing."""
    with psycopg.connect(conninfo) as conn, conn.transaction():
        write_catalog(conn)


def write_catalog(conn: psycopg.Connection[Any]) -> None:
    for sub in SUBNUCLEOS:
        conn.execute(
            """
            INSERT INTO public.subnucleos (id, slug, name, description, price_monthly, sort_order)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (id) DO UPDATE SET
                slug = EXCLUDED.slug, name = EXCLUDED.name, description = EXCLUDED.description,
                price_monthly = EXCLUDED.price_monthly, sort_order = EXCLUDED.sort_order
            WHERE (public.subnucleos.slug, public.subnucleos.name,
                   public.subnucleos.description, public.subnucleos.price_monthly,
                   public.subnucleos.sort_order)
                  IS DISTINCT FROM (EXCLUDED.slug, EXCLUDED.name, EXCLUDED.description,
                                    EXCLUDED.price_monthly, EXCLUDED.sort_order)
            """,
            (sub.id, sub.slug, sub.name, sub.description, sub.price_monthly, sub.sort_order),
        )
    for order, agent in enumerate(AGENTS):
        conn.execute(
            """
            INSERT INTO alquimista_platform.agents
                (id, slug, name, description, category, requires_approval)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (id) DO UPDATE SET
                slug = EXCLUDED.slug, name = EXCLUDED.name, description = EXCLUDED.description,
                category = EXCLUDED.category, requires_approval = EXCLUDED.requires_approval
            WHERE (alquimista_platform.agents.slug, alquimista_platform.agents.name,
                   alquimista_platform.agents.description, alquimista_platform.agents.category,
                   alquimista_platform.agents.requires_approval)
                  IS DISTINCT FROM (EXCLUDED.slug, EXCLUDED.name, EXCLUDED.description,
                                    EXCLUDED.category, EXCLUDED.requires_approval)
            """,
            (
                agent.id,
                agent.slug,
                agent.name,
                agent.description,
                agent.category,
                agent.requires_approval,
            ),
        )
        conn.execute(
            """
            INSERT INTO public.subnucleo_agents (subnucleo_id, agent_id, sort_order)
            VALUES (%s, %s, %s)
            ON CONFLICT (subnucleo_id, agent_id) DO NOTHING
            """,
            (find_subnucleo(agent.subnucleo).id, agent.id, order),
        )
    for plan in PLANS:
        conn.execute(
            """
            INSERT INTO public.subscription_plans
                (id, slug, name, description, price_monthly, price_yearly, max_users,
                 max_agents, max_subnucleos, monthly_token_quota, trial_days, features,
                 sort_order)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (id) DO UPDATE SET
                slug = EXCLUDED.slug, name = EXCLUDED.name, description = EXCLUDED.description,
                price_monthly = EXCLUDED.price_monthly, price_yearly = EXCLUDED.price_yearly,
                max_users = EXCLUDED.max_users, max_agents = EXCLUDED.max_agents,
                max_subnucleos = EXCLUDED.max_subnucleos,
                monthly_token_quota = EXCLUDED.monthly_token_quota,
                trial_days = EXCLUDED.trial_days, features = EXCLUDED.features,
                sort_order = EXCLUDED.sort_order
            """,
            (
                plan.id,
                plan.slug,
                plan.name,
                plan.description,
                plan.price_monthly,
                plan.price_yearly,
                plan.max_users,
                plan.max_agents,
                len(plan.subnucleos),
                plan.monthly_token_quota,
                plan.trial_days,
                Jsonb(list(plan.features)),
                plan.sort_order,
            ),
        )
        for slug in plan.subnucleos:
            conn.execute(
                """
                INSERT INTO public.subscription_plan_subnucleos (plan_id, subnucleo_id)
                VALUES (%s, %s)
                ON CONFLICT (plan_id, subnucleo_id) DO NOTHING
                """,
                (plan.id, find_subnucleo(slug).id),
            )


def dev_subscription_ids(tenant_id: uuid.UUID) -> tuple[uuid.UUID, str, str]:
    """Our id, and Stripe's subscription and customer ids, of a tenant's seeded subscription
    (stable, so ``scripts/send_test_webhook.py`` can name them)."""
    short = tenant_id.hex[:16]
    return catalog_id("subscription", str(tenant_id)), f"sub_dev_{short}", f"cus_dev_{short}"


def insert_subscription(
    conn: psycopg.Connection[Any], tenant_id: uuid.UUID, plan: CatalogPlan
) -> None:
    """Give ``tenant_id`` a live monthly subscription to ``plan``, billed by Stripe under the
    ids of ``dev_subscription_ids``, unless it already has one. Its plan history
    (``tenant_subscriptions``) follows from the trigger of migration 022."""
    set_tenant(conn, tenant_id)
    live = conn.execute(
        """
        SELECT 1 FROM public.subscriptions
        WHERE tenant_id = %s AND public.subscription_is_live_v1(status)
        """,
        (tenant_id,),
    ).fetchone()
    if live:
        return
    subscription_id, stripe_subscription, stripe_customer = dev_subscription_ids(tenant_id)
    conn.execute(
        """
        INSERT INTO public.subscriptions
            (id, tenant_id, plan_id, provider, provider_subscription_id, provider_customer_id,
             status, billing_interval, amount, current_period_end)
        VALUES (%s, %s, %s, 'stripe', %s, %s, 'active', 'month', %s, now() + interval '1 month')
        ON CONFLICT (id) DO NOTHING
        """,
        (
            subscription_id,
            tenant_id,
            plan.id,
            stripe_subscription,
            stripe_customer,
            plan.price_monthly,
        ),
    )


def seed_dev_subscriptions(conninfo: str) -> None:
    """Subscribe each existing dev tenant to its plan (needs ``seed_catalog`` first)."""
    with psycopg.connect(conninfo) as conn, conn.transaction():
        for tenant in TENANTS:
            plan_slug = DEV_SUBSCRIPTIONS.get(tenant.slug)
            exists = conn.execute(
                "SELECT 1 FROM alquimista_platform.tenants WHERE id = %s", (tenant.id,)
            ).fetchone()
            if plan_slug and exists:
                insert_subscription(conn, tenant.id, find_plan(plan_slug))
