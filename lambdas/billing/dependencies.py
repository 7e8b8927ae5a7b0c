"""What the billing routers share: units of work built from the request's scope, for the
caller's tenant or for none."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router

from lambdas.billing.repository import BillingUnitOfWork
from lambdas.shared.http import current_scope


def tenant_uow(router: Router) -> Callable[[], BillingUnitOfWork]:
    """Units of work scoped to the authorized caller's tenant."""

    def build() -> BillingUnitOfWork:
        scope = current_scope(router)
        return BillingUnitOfWork(scope, scope.caller.tenant_id)

    return build


def public_uow(router: Router) -> Callable[[], BillingUnitOfWork]:
    """Units of work with no tenant: tenant-owned tables are invisible to them (RLS)."""
    return lambda: BillingUnitOfWork(current_scope(router), None)


def scoped_uow(router: Router) -> Callable[[UUID | None], BillingUnitOfWork]:
    """Units of work for a tenant the request names itself (a signed webhook's)."""
    return lambda tenant_id: BillingUnitOfWork(current_scope(router), tenant_id)
