"""What the intake routers share: units of work built from the request's scope."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router

from lambdas.leads.intake_uow import LeadsIntakeUnitOfWork
from lambdas.shared.errors import BadRequest
from lambdas.shared.http import current_scope


def tenant_uow(router: Router) -> Callable[[], LeadsIntakeUnitOfWork]:
    """Units of work scoped to the authorized caller's tenant."""

    def build() -> LeadsIntakeUnitOfWork:
        scope = current_scope(router)
        return LeadsIntakeUnitOfWork(scope, scope.caller.tenant_id)

    return build


def scoped_uow(router: Router) -> Callable[[UUID], LeadsIntakeUnitOfWork]:
    """Units of work for a tenant the request resolves itself (a public form's)."""
    return lambda tenant_id: LeadsIntakeUnitOfWork(current_scope(router), tenant_id)


def caller_id(router: Router) -> UUID | None:
    return current_scope(router).caller.user_id


def header(router: Router, name: str) -> str | None:
    headers = router.current_event.headers or {}
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


class IdempotencyKeyRequired(BadRequest):
    code = "idempotency_key_required"
