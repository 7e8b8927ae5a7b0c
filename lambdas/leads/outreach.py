"""Outreach: an e-mail to a lead, sent once per idempotency key, only when the lead's legal
basis covers the purpose, the lead is not suppressed and the tenant's policies allow it.

Each refusal names the rule that refused (``details[0].rule``). The legal-basis decision is
pure (``legal_basis_refusal``); I/O stays in ``OutreachService``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol
from uuid import UUID

from pydantic import BaseModel, Field

from lambdas.leads.errors import LeadNotFound
from lambdas.leads.intake_uow import LeadsIntakeUnitOfWork
from lambdas.leads.outreach_repository import OutreachRecord, OutreachTarget
from lambdas.leads.suppression import lead_digests
from lambdas.policies.subject import Subject
from lambdas.shared import gate
from lambdas.shared.errors import Conflict, Forbidden, ServiceUnavailable, ValidationFailed

# Purposes a legitimate interest (LGPD Art. 7, IX) covers for B2B prospecting; any other
# purpose needs the lead's consent to it.
LEGITIMATE_INTEREST_PURPOSES: Final = frozenset({"prospecting", "follow_up"})


class OutreachNotPermitted(Forbidden):
    """The lead's legal basis does not cover this outreach (consent missing, withdrawn or for
    another purpose; an objection to the legitimate interest)."""

    code = "outreach_not_permitted"


class OutreachSuppressed(Forbidden):
    code = "lead_suppressed"


class OutreachUnreachable(ValidationFailed):
    code = "lead_unreachable"


class OutreachInProgress(Conflict):
    code = "outreach_in_progress"


class IdempotencyKeyMismatch(ValidationFailed):
    code = "idempotency_key_reused"


class EmailUnavailable(ServiceUnavailable):
    code = "email_unavailable"


class OutreachRequest(BaseModel):
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=20_000)
    purpose: str = Field(pattern=r"^[a-z][a-z0-9_]{0,99}$")


class OutreachResponse(BaseModel):
    outreach_id: UUID
    lead_id: UUID
    purpose: str
    interaction_id: UUID | None
    provider_message_id: str | None
    sent_at: datetime | None
    replayed: bool = False


@dataclass(frozen=True)
class Refusal:
    rule: str
    message: str


def legal_basis_refusal(target: OutreachTarget, purpose: str) -> Refusal | None:
    """Why the lead may not be contacted for ``purpose``, or None. A withdrawal, a denial or
    an opt-out refuses whatever the legal basis (an objection ends a legitimate interest too)."""
    consented = target.consent_status == "granted" and purpose in target.consent_purposes
    checks: tuple[tuple[bool, str, str], ...] = (
        (target.status == "opted_out", "opted_out", "the lead opted out of contact"),
        (target.consent_status == "withdrawn", "consent_withdrawn", "the lead withdrew consent"),
        (target.consent_status == "denied", "consent_denied", "the lead denied consent"),
        (
            target.legal_basis == "consent" and target.consent_status != "granted",
            "consent_missing",
            "the lead has not consented",
        ),
        (
            target.legal_basis == "consent" and not consented,
            "consent_purpose",
            f"the lead's consent does not cover '{purpose}'",
        ),
        (
            target.legal_basis == "legitimate_interest"
            and purpose not in LEGITIMATE_INTEREST_PURPOSES
            and not consented,
            "legitimate_interest_purpose",
            f"a legitimate interest does not cover '{purpose}' without consent",
        ),
        (
            target.legal_basis not in {"consent", "legitimate_interest"},
            "legal_basis",
            f"no outreach under the legal basis '{target.legal_basis}'",
        ),
    )
    return next((Refusal(rule, message) for failed, rule, message in checks if failed), None)


class EmailSender(Protocol):
    def send(self, *, to: str, subject: str, body: str) -> str: ...


IntakeUowFactory = Callable[[], AbstractContextManager[LeadsIntakeUnitOfWork]]


def _response(record: OutreachRecord, *, replayed: bool) -> OutreachResponse:
    return OutreachResponse(
        outreach_id=record.id,
        lead_id=record.lead_id,
        purpose=record.purpose,
        interaction_id=record.interaction_id,
        provider_message_id=record.provider_message_id,
        sent_at=record.sent_at,
        replayed=replayed,
    )


def _refused(error: type[Forbidden | ValidationFailed], refusal: Refusal) -> Exception:
    return error(refusal.message, details=[{"rule": refusal.rule}])


class OutreachService:
    def __init__(
        self, uow_factory: IntakeUowFactory, *, sender: EmailSender, suppression_key: bytes
    ) -> None:
        self._uow = uow_factory
        self._sender = sender
        self._key = suppression_key

    def send(
        self,
        lead_id: UUID,
        request: OutreachRequest,
        *,
        idempotency_key: str,
        requested_by: UUID | None,
    ) -> OutreachResponse:
        """Send the e-mail once per ``idempotency_key``: a replay of a sent key returns what was
        sent and sends nothing. The checks and the claim commit before SES is called (no
        transaction stays open over the network); the interaction, the lead's contact date and
        the audit row commit after. A send that fails gives the key back."""
        claim = self._authorize_and_claim(lead_id, request, idempotency_key, requested_by)
        if isinstance(claim, OutreachResponse):
            return claim
        record, email = claim
        try:
            message_id = self._sender.send(to=email, subject=request.subject, body=request.body)
        except Exception as error:
            with self._uow() as uow:
                uow.outreach.release(record.id)
                uow.commit()
            raise EmailUnavailable("the e-mail could not be sent; retry later") from error
        with self._uow() as uow:
            interaction = uow.interactions.append(
                lead_id,
                channel="email",
                direction="outbound",
                kind="outreach",
                content=request.body,
                user_id=requested_by,
            )
            sent = uow.outreach.mark_sent(
                record.id, provider_message_id=message_id, interaction_id=interaction.id
            )
            uow.outreach.mark_contacted(lead_id)
            uow.record(
                "lead.outreach_sent",
                aggregate_type="lead",
                aggregate_id=str(lead_id),
                payload={
                    "outreach_id": sent.id,
                    "lead_id": lead_id,
                    "interaction_id": interaction.id,
                    "purpose": sent.purpose,
                    "evaluation_id": record.evaluation_id,
                },
            )
            uow.commit()
        return _response(sent, replayed=False)

    def _authorize_and_claim(
        self,
        lead_id: UUID,
        request: OutreachRequest,
        idempotency_key: str,
        requested_by: UUID | None,
    ) -> OutreachResponse | tuple[OutreachRecord, str]:
        with self._uow() as uow:
            existing = uow.outreach.by_key(idempotency_key)
            if existing is not None:
                return self._replay(existing, lead_id)
            target = uow.outreach.target(lead_id)
            if target is None:
                raise LeadNotFound(f"lead {lead_id} not found")
            refusal = legal_basis_refusal(target, request.purpose)
            if refusal is not None:
                raise _refused(OutreachNotPermitted, refusal)
            if uow.suppression.matches(
                lead_digests(self._key, email=target.email, phone=target.phone)
            ):
                raise _refused(
                    OutreachSuppressed,
                    Refusal("suppression_list", "the lead is on the suppression list"),
                )
            if not target.email:
                raise _refused(
                    OutreachUnreachable, Refusal("no_email", "the lead has no e-mail address")
                )
            decision = gate.authorize(
                uow,
                Subject(
                    kind="lead.outreach",
                    id=f"{lead_id}:{idempotency_key}",
                    text=f"{request.subject}\n{request.body}",
                    action_type="lead.outreach",
                ),
                summary=f"Outreach e-mail to lead {lead_id} for '{request.purpose}'",
                payload={"lead_id": str(lead_id), "purpose": request.purpose},
            )
            if not decision.allowed:
                uow.commit()  # the evaluation, its audit row and the approval request stay
                raise _gate_refusal(decision)
            record = uow.outreach.claim(
                lead_id,
                idempotency_key=idempotency_key,
                purpose=request.purpose,
                evaluation_id=decision.evaluation_id,
                requested_by=requested_by,
            )
            if record is None:
                raise OutreachInProgress("another request is sending with this idempotency key")
            gate.recheck(uow, decision)
            uow.commit()
        return record, target.email

    @staticmethod
    def _replay(existing: OutreachRecord, lead_id: UUID) -> OutreachResponse:
        if existing.lead_id != lead_id:
            raise IdempotencyKeyMismatch("this idempotency key was used for another lead")
        if existing.status != "sent":
            raise OutreachInProgress("an outreach with this idempotency key is being sent")
        return _response(existing, replayed=True)


def _gate_refusal(decision: gate.GateDecision) -> Exception:
    detail: dict[str, Any] = {
        "rule": "policy",
        "rule_id": str(decision.rule_id) if decision.rule_id else None,
        "rule_version": decision.rule_version,
        "evaluation_id": str(decision.evaluation_id),
        "reason": decision.reason,
    }
    if decision.verdict == "blocked":
        return gate.ActionBlocked(
            f"blocked by the tenant's policies: {decision.reason}", details=[detail]
        )
    detail["rule"] = "approval_required"
    detail["approval_request_id"] = str(decision.approval_id)
    return gate.ApprovalPending(
        "the tenant's policies require human approval; retry with the same idempotency key "
        "once it is approved",
        details=[detail],
    )
