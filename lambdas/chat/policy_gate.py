"""The chat ``Gate`` port on the platform's gate (``lambdas.shared.gate``): a question is the
subject ``chat.message``, filed under the question's id, with its text and estimated tokens."""

from __future__ import annotations

from lambdas.chat.service import GateVerdict, MessageSubject
from lambdas.policies.subject import Subject
from lambdas.shared import gate
from lambdas.shared.db import UnitOfWork

SUBJECT_KIND = "chat.message"
SUMMARY = "Chat message to the assistant"


class PolicyGate:
    """Evaluates in the transaction of ``uow`` (the caller commits what the gate wrote)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    def authorize(self, subject: MessageSubject) -> GateVerdict:
        decision = gate.authorize(
            self._uow,
            Subject(
                kind=SUBJECT_KIND,
                id=str(subject.message_id),
                text=subject.content,
                estimated_tokens=subject.estimated_tokens,
            ),
            summary=SUMMARY,
            payload={
                "session_id": str(subject.session_id),
                "message_id": str(subject.message_id),
                "estimated_tokens": subject.estimated_tokens,
            },
        )
        return GateVerdict(
            outcome=decision.verdict,
            reason=decision.reason,
            approval_request_id=decision.approval_id,
            evaluation_id=decision.evaluation_id,
        )

    def recheck(self, verdict: GateVerdict) -> None:
        if verdict.outcome != "allow" or verdict.approval_request_id is None:
            return
        if verdict.evaluation_id is None:
            raise ValueError("an approved verdict names the evaluation it came from")
        gate.recheck(
            self._uow,
            gate.GateDecision(
                verdict="allow",
                evaluation_id=verdict.evaluation_id,
                reason=verdict.reason or "",
                approval_id=verdict.approval_request_id,
            ),
        )
