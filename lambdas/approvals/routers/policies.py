"""``/api/policies``: the tenant's rules (admins write, members read) and the dry run."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from lambdas.policies import service
from lambdas.policies.matcher import InvalidMatcher
from lambdas.policies.models import (
    DryRunRequest,
    PolicyDefault,
    RuleDraft,
    RuleUpdate,
    RuleVersion,
)
from lambdas.policies.repository import (
    InvalidRule,
    PoliciesUnitOfWork,
    RuleChangedConcurrently,
    RuleNotFound,
)
from lambdas.shared.errors import error_responses
from lambdas.shared.http import current_scope

router = Router()  # type: ignore[no-untyped-call]


def _uow() -> PoliciesUnitOfWork:
    scope = current_scope(router)
    return PoliciesUnitOfWork(scope, scope.caller.tenant_id)


def _actor() -> UUID:
    return current_scope(router).caller.user_id


@router.get("/api/policies", summary="List the tenant's policy rules (current versions)")
def list_rules(
    include_inactive: Annotated[bool, Query(description="also the deactivated rules")] = True,
) -> service.RuleList:
    return service.list_rules(_uow, include_inactive=include_inactive)


@router.post(
    "/api/policies",
    status_code=201,
    summary="Create a policy rule (admin); an invalid matcher is 422 and not stored",
    responses=error_responses(InvalidMatcher, InvalidRule, success=201),
)
def create_rule(draft: RuleDraft) -> RuleVersion:
    return service.create_rule(_uow, draft, actor_id=_actor())


@router.post(
    "/api/policies/evaluate",
    summary="Dry-run a subject against the tenant's rules: which rule decided, and why",
)
def evaluate(request: DryRunRequest) -> service.EvaluationResult:
    return service.dry_run(_uow, request.subject(), actor_id=_actor())


# Before /api/policies/<rule_id>: "settings" is not a rule id.
@router.get(
    "/api/policies/settings",
    summary="Get the tenant's default effect, applied when no rule matches",
)
def get_settings() -> PolicyDefault:
    return service.get_default(_uow)


@router.put(
    "/api/policies/settings",
    summary="Set the tenant's default effect, applied when no rule matches (admin)",
)
def put_settings(setting: PolicyDefault) -> PolicyDefault:
    return service.set_default(_uow, setting, actor_id=_actor())


@router.get(
    "/api/policies/<rule_id>",
    summary="Get a policy rule with all its versions",
    responses=error_responses(RuleNotFound),
)
def get_rule(rule_id: Annotated[UUID, Path()]) -> service.RuleHistory:
    return service.get_rule(_uow, rule_id)


@router.put(
    "/api/policies/<rule_id>",
    summary="Change a policy rule: stores its next version, earlier ones stay (admin)",
    responses=error_responses(RuleNotFound, RuleChangedConcurrently, InvalidMatcher, InvalidRule),
)
def update_rule(rule_id: Annotated[UUID, Path()], update: RuleUpdate) -> RuleVersion:
    return service.update_rule(
        _uow,
        rule_id,
        update.draft(),
        actor_id=_actor(),
        expected_version=update.expected_version,
    )


@router.post(
    "/api/policies/<rule_id>/deactivate",
    summary="Stop evaluating a policy rule (a new, inactive version; admin)",
    responses=error_responses(RuleNotFound, RuleChangedConcurrently),
)
def deactivate_rule(rule_id: Annotated[UUID, Path()]) -> RuleVersion:
    return service.deactivate_rule(_uow, rule_id, actor_id=_actor())
