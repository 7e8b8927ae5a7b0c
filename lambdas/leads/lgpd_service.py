"""LGPD use cases: consent (grant and withdrawal, effective at once), and the data subject's
access export and erasure, each tracked as a request against the 15-day deadline and audited
without personal data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal
from uuid import UUID

from lambdas.leads.errors import InvalidLead, LeadNotFound
from lambdas.leads.ports import LeadsUowFactory
from lambdas.leads.suppression import ip_hmac, lead_digests

ConsentAction = Literal["granted", "withdrawn", "denied"]


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
            uow.audit.append(
                f"lead.consent_{action}", resource_type="lead", resource_id=str(lead_id)
            )
            uow.commit()
        return event

    def export(self, lead_id: UUID, *, requested_by: UUID | None) -> dict[str, Any]:
        """Everything held about the lead's person, as one JSON document (access/portability)."""
        with self._uow() as uow:
            if uow.leads.get(lead_id, include_deleted=True) is None:
                raise LeadNotFound(f"lead {lead_id} not found")
            request = uow.requests.open(
                lead_id, kind="access", channel="admin", requested_by=requested_by
            )
            document = uow.requests.export(lead_id)
            uow.requests.complete(request["id"], outcome={"exported": True})
            uow.audit.append("lead.dsr_access", resource_type="lead", resource_id=str(lead_id))
            uow.commit()
        return document

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
            uow.requests.complete(request["id"], outcome={"erased": True, "suppressed": suppress})
            uow.audit.append(
                "lead.dsr_erasure",
                resource_type="lead",
                resource_id=str(lead_id),
                details={"suppressed": suppress},
            )
            uow.commit()
        return UUID(str(request["id"]))
