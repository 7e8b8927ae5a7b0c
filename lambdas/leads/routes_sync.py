"""Offline-client sync: the changes feed, the batched push and the conflicts it stores."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import content_types
from aws_lambda_powertools.event_handler.api_gateway import Response, Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from lambdas.leads.dependencies import LeadsDependencies
from lambdas.leads.errors import ConflictNotFound, InvalidLead
from lambdas.leads.models import (
    ChangesPage,
    ConflictList,
    MutationResult,
    ResolveConflictRequest,
    SyncRequest,
    SyncResponse,
)
from lambdas.shared.cursors import InvalidCursor
from lambdas.shared.errors import Conflict, ValidationFailed, error_responses
from lambdas.shared.http import current_scope

router = Router()  # type: ignore[no-untyped-call]
deps = LeadsDependencies(router)


# The page arrives as the JSON text PostgreSQL built and is sent as it is (no model validation
# of 1,000 rows on the way out); the contract still names ChangesPage.
@router.get(
    "/api/leads/changes",
    summary="What changed after the cursor (leads, campaigns, interactions, meetings)",
    responses=error_responses(InvalidCursor)
    | {
        200: {
            "description": "Successful Response",
            "content": {"application/json": {"model": ChangesPage}},
        }
    },
)
def changes(
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Response[str]:
    body = deps.leads().changes_json(cursor=cursor, limit=limit)
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=body)


@router.post(
    "/api/leads/sync",
    summary=(
        "Push up to 1,000 lead, campaign, interaction and meeting mutations (idempotent by "
        "client mutation id; one result each)"
    ),
    description=(
        "An update is partial, as PATCH is: only the fields it sends are written, a field left "
        "out keeps the server's value, an explicit null clears a field that may be empty (null "
        "for one that may not is a 422). A create takes the defaults for what it leaves out. A "
        "stale update is a conflict stored with the fields it sent and the server's whole row."
    ),
    responses=error_responses(ValidationFailed),
)
def push(request: SyncRequest) -> SyncResponse:
    results = deps.sync().push(
        request.mutations,
        device_id=request.device_id,
        user_id=current_scope(router).caller.user_id,
    )
    return SyncResponse(results=results)


@router.get("/api/leads/conflicts", summary="Open sync conflicts, each with both versions")
def list_conflicts(limit: Annotated[int, Query(ge=1, le=500)] = 100) -> ConflictList:
    return ConflictList(items=deps.sync().conflicts(limit=limit))


@router.post(
    "/api/leads/conflicts/<conflict_id>/resolve",
    summary="Resolve a conflict: keep_mine, keep_theirs or merged",
    responses=error_responses(ConflictNotFound, Conflict, InvalidLead),
)
def resolve_conflict(
    conflict_id: Annotated[UUID, Path()], request: ResolveConflictRequest
) -> MutationResult:
    return deps.sync().resolve(
        conflict_id,
        request.resolution,
        merged=request.merged,
        user_id=current_scope(router).caller.user_id,
    )
