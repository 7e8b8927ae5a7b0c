from __future__ import annotations

from lambdas.shared.coldstart import collector_paused

with collector_paused():
    from typing import Annotated, Any
    from uuid import UUID

    from aws_lambda_powertools.event_handler.openapi.params import Path, Query
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from lambdas.members import service
    from lambdas.members.cognito import CognitoDirectory
    from lambdas.members.models import (
        ChangeRoleRequest,
        InvitationResponse,
        InviteMemberRequest,
        MemberPage,
        MemberRemovedResponse,
        MemberResponse,
        Role,
    )
    from lambdas.members.repository import MembersUnitOfWork
    from lambdas.shared.cursors import InvalidCursor
    from lambdas.shared.errors import error_responses
    from lambdas.shared.http import create_resolver, current_scope, resolve
    from lambdas.shared.observability import logger, metrics, tracer
    from lambdas.shared.runtime import get_runtime

app = create_resolver()


def _uow() -> MembersUnitOfWork:
    scope = current_scope(app)
    return MembersUnitOfWork(scope, scope.caller.tenant_id)


def _directory() -> CognitoDirectory:
    runtime = get_runtime()
    return CognitoDirectory(runtime.cognito, user_pool_id=runtime.members_settings.user_pool_id)


@app.get(
    "/api/members",
    summary="List the tenant's members with their roles (cursor pagination)",
    responses=error_responses(InvalidCursor),
)
def list_members(
    role: Role | None = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MemberPage:
    return service.list_members(_uow, role=role, cursor=cursor, limit=limit)


@app.post(
    "/api/members/invitations",
    status_code=201,
    summary="Invite a user by e-mail with a role (admin): a Cognito account and a membership",
    responses=error_responses(
        service.MemberAlreadyExists,
        service.AccountConflict,
        service.EmailRejected,
        service.IdentityProviderUnavailable,
        success=201,
    ),
)
def invite_member(request: InviteMemberRequest) -> InvitationResponse:
    caller = current_scope(app).caller
    return service.invite_member(
        _uow, _directory(), request, tenant_id=caller.tenant_id, actor_id=caller.user_id
    )


@app.get(
    "/api/members/<user_id>",
    summary="Get one member of the tenant with their role",
    responses=error_responses(service.MemberNotFound),
)
def get_member(user_id: Annotated[UUID, Path()]) -> MemberResponse:
    return service.get_member(_uow, user_id)


@app.patch(
    "/api/members/<user_id>",
    summary="Change a member's role (admin; the tenant keeps at least one admin)",
    responses=error_responses(service.MemberNotFound, service.LastAdmin),
)
def change_role(user_id: Annotated[UUID, Path()], request: ChangeRoleRequest) -> MemberResponse:
    actor = current_scope(app).caller.user_id
    return service.change_role(_uow, user_id, request, actor_id=actor)


@app.delete(
    "/api/members/<user_id>",
    summary="Remove a member (admin): their pending approval requests are canceled and their "
    "approvals on pending requests withdrawn",
    responses=error_responses(service.MemberNotFound, service.LastAdmin),
)
def remove_member(user_id: Annotated[UUID, Path()]) -> MemberRemovedResponse:
    actor = current_scope(app).caller.user_id
    return service.remove_member(_uow, user_id, actor_id=actor)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
