"""What the billing routers share: units of work for the caller's tenant or for none."""

from __future__ import annotations

from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router

from lambdas.billing.repository import BillingUnitOfWork
from lambdas.shared.http import current_principal, get_database


def tenant_uow(router: Router) -> BillingUnitOfWork:
    """A unit of work scoped to the authorized caller's tenant."""
    return BillingUnitOfWork(get_database(), current_principal(router).tenant_id)


def public_uow() -> BillingUnitOfWork:
    """A unit of work with no tenant: tenant-owned tables are invisible to it (RLS)."""
    return BillingUnitOfWork(get_database(), None)


def scoped_uow(tenant_id: UUID | None) -> BillingUnitOfWork:
    return BillingUnitOfWork(get_database(), tenant_id)
