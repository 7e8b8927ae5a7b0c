from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlanAgent(_Response):
    id: UUID
    slug: str
    name: str
    category: str


class PlanSubnucleo(_Response):
    id: UUID
    slug: str
    name: str
    description: str
    price_monthly: Decimal
    currency: str
    agents: list[PlanAgent]


class PlanResponse(_Response):
    id: UUID
    slug: str
    name: str
    description: str
    price_monthly: Decimal
    price_yearly: Decimal | None
    currency: str
    max_users: int | None
    max_agents: int | None
    max_subnucleos: int | None
    monthly_token_quota: int | None
    trial_days: int
    features: list[str]
    subnucleos: list[PlanSubnucleo]


class PlanListResponse(_Response):
    items: list[PlanResponse]
