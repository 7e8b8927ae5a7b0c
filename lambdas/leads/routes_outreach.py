"""``POST /api/leads/{lead_id}/outreach``: an e-mail to the lead through SES, behind the legal
basis, the suppression list and the gate."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from lambdas.leads.errors import LeadNotFound
from lambdas.leads.intake_routing import IdempotencyKeyRequired, caller_id, header, tenant_uow
from lambdas.leads.intake_runtime import intake_settings, suppression_key
from lambdas.leads.outreach import (
    EmailUnavailable,
    IdempotencyKeyMismatch,
    OutreachInProgress,
    OutreachNotPermitted,
    OutreachRequest,
    OutreachResponse,
    OutreachService,
    OutreachSuppressed,
    OutreachUnreachable,
)
from lambdas.leads.outreach_repository import SesEmailSender
from lambdas.shared.errors import error_responses
from lambdas.shared.gate import ActionBlocked, ApprovalPending
from lambdas.shared.runtime import get_runtime

MAX_KEY_LENGTH = 120

router = Router()  # type: ignore[no-untyped-call]
_uow = tenant_uow(router)


@router.post(
    "/api/leads/<lead_id>/outreach",
    summary="Send an outreach e-mail to the lead (once per Idempotency-Key)",
    description=(
        "Sent only if the lead's legal basis covers `purpose` (consent to it, or a legitimate "
        "interest for `prospecting`/`follow_up`), the lead is not on the suppression list and "
        "the tenant's policies allow it. A refusal names its rule in `details[0].rule`. The "
        "same `Idempotency-Key` sends nothing: within 24 h the first response comes back "
        "(header `Idempotent-Replayed: true`), later the stored send (`replayed: true`). A 409 "
        "`approval_pending` is not kept: retry with the same key once the approval is granted."
    ),
    responses=error_responses(
        IdempotencyKeyRequired,
        LeadNotFound,
        OutreachNotPermitted,
        OutreachSuppressed,
        OutreachUnreachable,
        ActionBlocked,
        ApprovalPending,
        OutreachInProgress,
        IdempotencyKeyMismatch,
        EmailUnavailable,
    ),
)
def send_outreach(lead_id: Annotated[UUID, Path()], request: OutreachRequest) -> OutreachResponse:
    key = header(router, "Idempotency-Key")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise IdempotencyKeyRequired(
            f"an Idempotency-Key header of 1 to {MAX_KEY_LENGTH} characters is required"
        )
    sender = intake_settings().outreach_sender
    if not sender:
        raise EmailUnavailable("outreach e-mail is not configured")
    service = OutreachService(
        _uow,
        sender=SesEmailSender(get_runtime().ses, sender=sender),
        suppression_key=suppression_key(),
    )
    return service.send(lead_id, request, idempotency_key=key, requested_by=caller_id(router))
