"""Domain errors of approvals; the database refusals map onto the same ones
(``lambdas/approvals/repository.py:_translate``)."""

from __future__ import annotations

from lambdas.shared.errors import Conflict, Forbidden, NotFound, ValidationFailed


class ApprovalNotFound(NotFound):
    code = "approval_not_found"


class SelfApproval(Forbidden):
    code = "self_approval"


class NotADecider(Forbidden):
    code = "not_a_decider"


class NotTheRequester(Forbidden):
    code = "not_the_requester"


class ApprovalNotPending(Conflict):
    code = "approval_not_pending"


class ApprovalExpired(Conflict):
    code = "approval_expired"


class AlreadyDecided(Conflict):
    code = "already_decided"


class ReasonRequired(ValidationFailed):
    code = "reason_required"


class InvalidApprovalRequest(ValidationFailed):
    code = "invalid_approval_request"


class InvalidTransition(Conflict):
    code = "invalid_approval_transition"
