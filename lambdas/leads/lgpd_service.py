"""LGPD use cases: consent (grant and withdrawal, effective at once), and the data subject's
access export and erasure, each tracked as a request against the 15-day deadline and audited
without personal data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal
from uuid import UUID

from pydantic import ValidationError

from lambdas.leads.errors import InvalidLead, LeadNotFound, RequestNotFound
from lambdas.leads.models import LeadFields
from lambdas.leads.ports import LeadsUow, LeadsUowFactory
from lambdas.leads.service import normalized, refuse_if_suppressed
from lambdas.leads.suppression import ip_hmac, lead_digests

ConsentAction = Literal["granted", "withdrawn", "denied"]
# What a data subject may have corrected: the data about the person, not the sales pipeline.
CORRECTABLE_FIELDS = frozenset(
    {"full_name", "email", "phone", "company", "company_tax_id", "job_title"}
)


class LgpdService:
    def __init__(self, uow_factory: LeadsUowFactory, *, suppression_key: bytes) -> None:
        self._uow = uow_factory
        self._key = suppression_key

    def record_consent(
        self,
        lead_id: UUID,
        action: ConsentAction,
        *,
        channel: str,
        purposes: Sequence[str],
        text_version: str | None,
        ip: str | None,
        recorded_by: UUID | None,
    ) -> dict[str, Any]:
        """Append to the consent history and update the lead's consent state in the same
        transaction, so a withdrawal stops outreach as soon as it commits."""
        if action == "granted" and (not purposes or not text_version):
            raise InvalidLead("a consent names its purposes and the text version shown")
        try:
            digest = ip_hmac(self._key, ip) if ip else None
        except ValueError as error:
            raise InvalidLead("the IP address is not valid") from error
        with self._uow() as uow:
            event = uow.consents.record(
                lead_id,
                action=action,
                channel=channel,
                purposes=purposes,
                text_version=text_version,
                ip_hmac=digest,
                recorded_by=recorded_by,
            )
            if event is None:
                raise LeadNotFound(f"lead {lead_id} not found")
            uow.record(
                "lead.consent_recorded",
                aggregate_type="lead",
                aggregate_id=str(lead_id),
                payload={
                    "consent_event_id": event["id"],
                    "action": action,
                    "channel": channel,
                    "purposes": list(purposes),
                    "text_version": text_version,
                },
            )
            uow.commit()
        return event

    def consent_history(self, lead_id: UUID) -> list[dict[str, Any]]:
        """The lead's consent proof, oldest first; a deleted or anonymised lead keeps it."""
        with self._uow() as uow:
            if uow.leads.get(lead_id, include_deleted=True) is None:
                raise LeadNotFound(f"lead {lead_id} not found")
            return uow.consents.history(lead_id)

    def export(self, lead_id: UUID, *, requested_by: UUID | None) -> dict[str, Any]:
        """Everything held about the lead's person, as one JSON document (access/portability)."""
        return self.access(lead_id, requested_by=requested_by)[1]

    def access(
        self, lead_id: UUID, *, requested_by: UUID | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Carry out an access/portability request: (the completed request, the export)."""
        with self._uow() as uow:
            if uow.leads.get(lead_id, include_deleted=True) is None:
                raise LeadNotFound(f"lead {lead_id} not found")
            request = uow.requests.open(
                lead_id, kind="access", channel="admin", requested_by=requested_by
            )
            document = uow.requests.export(lead_id)
            done = uow.requests.complete(request["id"], outcome={"exported": True}) or request
            _record_request(uow, done, lead_id)
            uow.commit()
        return done, document

    def correct(
        self, lead_id: UUID, changes: dict[str, Any], *, requested_by: UUID | None
    ) -> dict[str, Any]:
        """Carry out a correction request (Art. 18 III): the subject's data is changed as
        asked, whatever version a client holds (clients see the new version in the feed)."""
        unknown = set(changes) - CORRECTABLE_FIELDS
        if not changes or unknown:
            raise InvalidLead(
                "a correction changes personal fields only",
                details=[{"loc": [name]} for name in sorted(unknown)] or None,
            )
        with self._uow() as uow:
            current = uow.leads.get(lead_id, lock=True)
            if current is None:
                raise LeadNotFound(f"lead {lead_id} not found")
            request = uow.requests.open(
                lead_id, kind="correction", channel="admin", requested_by=requested_by
            )
            try:
                merged = LeadFields.model_validate(current.fields().model_dump() | changes)
            except ValidationError as error:
                raise InvalidLead("the correction is not valid") from error
            fields, email, phone = normalized(merged)
            if (email, phone) != (current.email_normalized, current.phone_e164):
                refuse_if_suppressed(uow, self._key, email, phone)
            lead = uow.leads.update(
                lead_id,
                fields,
                expected_version=current.version,
                email_normalized=email,
                phone_e164=phone,
            )
            if lead is None:
                raise LeadNotFound(f"lead {lead_id} not found")
            changed = sorted(changes)
            done = uow.requests.complete(request["id"], outcome={"changed_fields": changed})
            _record_request(uow, done or request, lead_id, changed_fields=changed)
            uow.commit()
        return done or request

    def get_request(self, request_id: UUID) -> dict[str, Any]:
        with self._uow() as uow:
            request = uow.requests.get(request_id)
        if request is None:
            raise RequestNotFound(f"data subject request {request_id} not found")
        return request

    def requests(self, *, status: str | None, limit: int) -> list[dict[str, Any]]:
        """The tenant's requests, the nearest deadline first."""
        with self._uow() as uow:
            return uow.requests.page(status=status, limit=max(1, min(limit, 200)))

    def erase(self, lead_id: UUID, *, suppress: bool, requested_by: UUID | None) -> UUID:
        """Anonymise the lead and what hangs from it (counts and metrics keep their numbers);
        with ``suppress`` the person's identifiers go to the suppression list first, as
        digests, so they are never imported or contacted again. Returns the request's id."""
        with self._uow() as uow:
            lead = uow.leads.get(lead_id, include_deleted=True, lock=True)
            if lead is None:
                raise LeadNotFound(f"lead {lead_id} not found")
            request = uow.requests.open(
                lead_id, kind="erasure", channel="admin", requested_by=requested_by
            )
            if suppress:
                digests = lead_digests(
                    self._key, email=lead.email_normalized, phone=lead.phone_e164
                )
                uow.suppression.add(digests, reason="lgpd_request", added_by=requested_by)
            uow.requests.erase(lead_id)
            done = uow.requests.complete(
                request["id"], outcome={"erased": True, "suppressed": suppress}
            )
            _record_request(uow, done or request, lead_id, suppressed=suppress)
            uow.commit()
        return UUID(str(request["id"]))


def _record_request(
    uow: LeadsUow,
    request: dict[str, Any],
    lead_id: UUID,
    *,
    suppressed: bool | None = None,
    changed_fields: list[str] | None = None,
) -> None:
    payload: dict[str, Any] = {
        "lead_id": lead_id,
        "kind": request["kind"],
        "channel": request["channel"],
    }
    if suppressed is not None:
        payload["suppressed"] = suppressed
    if changed_fields is not None:
        payload["changed_fields"] = changed_fields
    uow.record(
        "data_subject_request.completed",
        aggregate_type="data_subject_request",
        aggregate_id=str(request["id"]),
        payload=payload,
    )
