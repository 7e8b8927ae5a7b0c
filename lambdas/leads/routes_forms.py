"""Public capture forms: an admin defines them; anyone may submit one (no token; rate
limited per IP and form)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, cast
from uuid import UUID

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from lambdas.leads.forms import (
    ConsentRequired,
    FormNameTaken,
    FormNotFound,
    FormService,
    InvalidSubmission,
    SubmissionService,
    SubmissionsRateLimited,
)
from lambdas.leads.forms_models import (
    FormDefinition,
    FormDefinitionIn,
    FormSubmissionIn,
    FormSubmissionReceipt,
)
from lambdas.leads.intake_routing import caller_id, header, scoped_uow, tenant_uow
from lambdas.leads.intake_runtime import suppression_key
from lambdas.shared.db import UnitOfWork
from lambdas.shared.errors import error_responses
from lambdas.shared.http import current_scope

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.api_gateway_proxy_event import (
        APIGatewayProxyEventV2,
    )

router = Router()  # type: ignore[no-untyped-call]
_uow = tenant_uow(router)
_scoped_uow = scoped_uow(router)


def _lookup_uow() -> UnitOfWork:
    return UnitOfWork(current_scope(router), None)


@router.post(
    "/api/leads/forms",
    status_code=201,
    summary="Define a public capture form (fields, consent text and version, purposes)",
    responses=error_responses(FormNameTaken, success=201),
)
def create_form(form: FormDefinitionIn) -> FormDefinition:
    return FormService(_uow).create(form, created_by=caller_id(router))


@router.get(
    "/api/leads/forms/<form_id>",
    summary="A capture form's definition",
    responses=error_responses(FormNotFound),
)
def get_form(form_id: Annotated[UUID, Path()]) -> FormDefinition:
    return FormService(_uow).get(form_id)


@router.post(
    "/api/leads/forms/<form_id>/submissions",
    status_code=201,
    summary="Submit a capture form (public; rate limited per IP)",
    description=(
        "Creates the lead, or fills the empty fields of the live lead with the same e-mail or "
        "phone, and records the consent to the form's text version and purposes. "
        "`consent_text_version` must be the form's current one."
    ),
    responses=error_responses(
        FormNotFound, ConsentRequired, InvalidSubmission, SubmissionsRateLimited, success=201
    ),
)
def submit_form(
    form_id: Annotated[UUID, Path()], submission: FormSubmissionIn
) -> FormSubmissionReceipt:
    service = SubmissionService(_lookup_uow, _scoped_uow, suppression_key=suppression_key())
    return service.submit(
        form_id,
        submission,
        client_ip=cast(
            "APIGatewayProxyEventV2", router.current_event
        ).request_context.http.source_ip,
        user_agent=header(router, "User-Agent"),
    )
