"""Public capture forms: their definition (an admin's), and a submission that creates or
enriches a lead with its consent proof (LGPD Art. 8: the text version shown, the purposes, the
channel, when, and the IP as a keyed digest)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Final
from uuid import UUID

from lambdas.leads.errors import InvalidLead
from lambdas.leads.forms_models import (
    FormDefinition,
    FormDefinitionIn,
    FormSubmissionIn,
    FormSubmissionReceipt,
)
from lambdas.leads.forms_repository import find_public_form
from lambdas.leads.intake_uow import LeadsIntakeUnitOfWork
from lambdas.leads.models import LeadFields
from lambdas.leads.service import normalized
from lambdas.leads.suppression import ip_hmac, lead_digests
from lambdas.shared.db import UnitOfWork
from lambdas.shared.errors import Conflict, NotFound, TooManyRequests, ValidationFailed

RATE_WINDOW_S: Final = 3600
ENRICHABLE: Final = ("full_name", "company", "job_title", "email", "phone")


class FormNotFound(NotFound):
    code = "form_not_found"


class FormNameTaken(Conflict):
    code = "form_name_taken"
    constraints = ("lead_forms_tenant_name_key",)
    constraint_message = "a form with this name already exists"


class ConsentRequired(ValidationFailed):
    code = "consent_required"


class InvalidSubmission(ValidationFailed):
    code = "invalid_submission"


class SubmissionsRateLimited(TooManyRequests):
    pass


class FormService:
    def __init__(self, uow_factory: Callable[[], AbstractContextManager[LeadsIntakeUnitOfWork]]):
        self._uow = uow_factory

    def create(self, form: FormDefinitionIn, *, created_by: UUID | None) -> FormDefinition:
        """Define a form; FormNameTaken if the tenant has one with this name (the unique key
        decides)."""
        with self._uow() as uow:
            created = uow.forms.create(form, created_by=created_by)
            uow.record(
                "lead_form.created",
                aggregate_type="lead_form",
                aggregate_id=str(created.id),
                payload={
                    "form_id": created.id,
                    "consent_text_version": created.consent_text_version,
                    "purposes": created.purposes,
                },
            )
            uow.commit()
        return created

    def get(self, form_id: UUID) -> FormDefinition:
        with self._uow() as uow:
            form = uow.forms.get(form_id)
        if form is None:
            raise FormNotFound(f"form {form_id} not found")
        return form


def _checked(form: FormDefinition, submission: FormSubmissionIn) -> LeadFields:
    if not submission.consent:
        raise ConsentRequired("the form is submitted with the consent given")
    if submission.consent_text_version != form.consent_text_version:
        raise ConsentRequired(
            "the consent text version is not the form's current one; reload the form"
        )
    values = {name: value.strip() for name, value in submission.fields.items() if value.strip()}
    unknown = sorted(set(values) - set(form.fields))
    missing = sorted(set(form.required_fields) - set(values))
    if unknown or missing:
        raise InvalidSubmission(
            "the submission does not match the form",
            details=[{"loc": ["fields", name], "msg": "not asked"} for name in unknown]
            + [{"loc": ["fields", name], "msg": "required"} for name in missing],
        )
    if "email" not in values and "phone" not in values:
        raise InvalidSubmission("an e-mail or a phone is required")
    return LeadFields.model_validate(
        values
        | {
            "source": "form",
            "legal_basis": "consent",
            "campanha_id": form.campanha_id,
        }
    )


class SubmissionService:
    """A public submission. The form is looked up first with no tenant (its id is all the
    request names); everything else runs in the form's tenant, in one transaction."""

    def __init__(
        self,
        lookup_uow: Callable[[], AbstractContextManager[UnitOfWork]],
        tenant_uow: Callable[[UUID], AbstractContextManager[LeadsIntakeUnitOfWork]],
        *,
        suppression_key: bytes,
    ) -> None:
        self._lookup = lookup_uow
        self._tenant_uow = tenant_uow
        self._key = suppression_key

    def submit(
        self,
        form_id: UUID,
        submission: FormSubmissionIn,
        *,
        client_ip: str,
        user_agent: str | None,
    ) -> FormSubmissionReceipt:
        """Record the submission and the consent, creating the lead or filling its empty
        fields. A suppressed person's submission is kept without their data and creates
        nothing (the answer does not say so). At most ``max_per_ip_per_hour`` per IP and form."""
        with self._lookup() as lookup:
            form = find_public_form(lookup.conn, form_id)
        if form is None:
            raise FormNotFound(f"form {form_id} not found")
        fields = _checked(form, submission)
        try:
            fields, email, phone = normalized(fields)
        except InvalidLead as error:
            raise InvalidSubmission(error.message, details=error.details) from error
        ip_digest = ip_hmac(self._key, client_ip)
        with self._tenant_uow(form.tenant_id) as uow:
            bucket = f"form:{form.id}:{ip_digest[:32]}"
            if not uow.rate_limits.take(
                bucket, window_s=RATE_WINDOW_S, max_count=form.max_per_ip_per_hour
            ):
                raise SubmissionsRateLimited(
                    "too many submissions from this address; retry later",
                    retry_after_s=RATE_WINDOW_S,
                )
            if uow.suppression.matches(lead_digests(self._key, email=email, phone=phone)):
                submission_id = uow.submissions.record(
                    form, lead_id=None, payload={}, status="rejected", user_agent=None
                )
                uow.commit()
                return FormSubmissionReceipt(submission_id=submission_id)
            lead_id, created = self._create_or_enrich(uow, fields, email, phone)
            uow.consents.record(
                lead_id,
                action="granted",
                channel="form",
                purposes=form.purposes,
                text_version=form.consent_text_version,
                ip_hmac=ip_digest,
                recorded_by=None,
            )
            submission_id = uow.submissions.record(
                form,
                lead_id=lead_id,
                payload={str(k): v for k, v in submission.fields.items()},
                status="processed",
                user_agent=user_agent,
            )
            uow.record(
                "form_submission.received",
                aggregate_type="form_submission",
                aggregate_id=str(submission_id),
                payload={
                    "submission_id": submission_id,
                    "form_id": form.id,
                    "lead_id": lead_id,
                    "lead_created": created,
                    "consent_text_version": form.consent_text_version,
                },
            )
            uow.commit()
        return FormSubmissionReceipt(submission_id=submission_id)

    @staticmethod
    def _create_or_enrich(
        uow: LeadsIntakeUnitOfWork, fields: LeadFields, email: str | None, phone: str | None
    ) -> tuple[UUID, bool]:
        existing_id = uow.leads.find_live_by_identifiers(email, phone)
        if existing_id is None:
            lead = uow.leads.create(None, fields, email_normalized=email, phone_e164=phone)
            return lead.id, True
        current = uow.leads.get(existing_id, lock=True)
        if current is None:
            raise RuntimeError("the lead found by its identifiers is gone")
        given: dict[str, Any] = fields.model_dump(include=set(ENRICHABLE))
        filled = {k: v for k, v in given.items() if v and not getattr(current, k)}
        if not filled:
            return current.id, False
        merged = LeadFields.model_validate(current.fields().model_dump() | filled)
        merged, new_email, new_phone = normalized(merged)
        uow.leads.update(
            current.id,
            merged,
            expected_version=current.version,
            email_normalized=new_email,
            phone_e164=new_phone,
        )
        return current.id, False
