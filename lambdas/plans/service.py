from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol
from uuid import UUID

from lambdas.plans.models import PlanListResponse, PlanResponse
from lambdas.shared.errors import NotFound


class PlanNotFound(NotFound):
    code = "plan_not_found"


class PlanReader(Protocol):
    def list_active(self) -> list[PlanResponse]: ...

    def get_active(self, plan_id: UUID) -> PlanResponse | None: ...


class PlansUow(Protocol):
    @property
    def plans(self) -> PlanReader: ...


PlansUowFactory = Callable[[], AbstractContextManager[PlansUow]]


def list_plans(uow_factory: PlansUowFactory) -> PlanListResponse:
    """Every plan on sale, with its subnúcleos, their agents and the prices."""
    with uow_factory() as uow:
        return PlanListResponse(items=uow.plans.list_active())


def get_plan(uow_factory: PlansUowFactory, plan_id: UUID) -> PlanResponse:
    """One plan on sale; PlanNotFound for an unknown or retired plan."""
    with uow_factory() as uow:
        plan = uow.plans.get_active(plan_id)
    if plan is None:
        raise PlanNotFound("plan not found")
    return plan
