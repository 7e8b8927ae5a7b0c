from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from lambdas.plans import service
from lambdas.plans.models import PlanResponse


def _plan(slug: str) -> PlanResponse:
    return PlanResponse(
        id=uuid.uuid4(),
        slug=slug,
        name=slug.title(),
        description="",
        price_monthly=Decimal("10.00"),
        price_yearly=None,
        currency="BRL",
        max_users=None,
        max_agents=None,
        max_subnucleos=None,
        monthly_token_quota=None,
        trial_days=0,
        features=[],
        subnucleos=[],
    )


@dataclass
class FakePlans:
    plans: list[PlanResponse] = field(default_factory=list)

    def list_active(self) -> list[PlanResponse]:
        return list(self.plans)

    def get_active(self, plan_id: uuid.UUID) -> PlanResponse | None:
        return next((p for p in self.plans if p.id == plan_id), None)


@dataclass
class FakePlansUow:
    plans: FakePlans
    entered: int = 0


@pytest.fixture
def uow() -> FakePlansUow:
    return FakePlansUow(FakePlans([_plan("starter"), _plan("enterprise")]))


def _factory(uow: FakePlansUow):
    @contextmanager
    def factory() -> Iterator[FakePlansUow]:
        uow.entered += 1
        yield uow

    return factory


def test_listing_returns_every_plan_from_one_unit_of_work(uow: FakePlansUow) -> None:
    listed = service.list_plans(_factory(uow))

    assert [p.slug for p in listed.items] == ["starter", "enterprise"]
    assert uow.entered == 1


def test_an_unknown_plan_is_plan_not_found(uow: FakePlansUow) -> None:
    with pytest.raises(service.PlanNotFound):
        service.get_plan(_factory(uow), uuid.uuid4())


def test_a_known_plan_is_returned(uow: FakePlansUow) -> None:
    wanted = uow.plans.plans[1]

    assert service.get_plan(_factory(uow), wanted.id) == wanted
