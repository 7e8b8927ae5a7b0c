"""SQL of approval requests and decisions.

The rules (quorum, no self-approval, the decider's permission, pending and unexpired, one
decision per decider) are enforced by the triggers of migration 026; this module sends the
writes and maps each refusal, by constraint name, to its domain error in ``translate_errors``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, LiteralString
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from lambdas.approvals.errors import (
    AlreadyDecided,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalNotPending,
    InvalidApprovalRequest,
    InvalidTransition,
    NotADecider,
    NotTheRequester,
    ReasonRequired,
    SelfApproval,
)
from lambdas.approvals.models import (
    ApprovalRecord,
    DecisionOutcome,
    NewApprovalRequest,
    SweptRequest,
)
from lambdas.approvals.notifications import notify
from lambdas.approvals.transitions import Status, Verdict
from lambdas.policies.subject import Subject
from lambdas.shared.constants import TENANT_SETTING
from lambdas.shared.db import Connection, Cursor, UnitOfWork
from lambdas.shared.errors import AppError
from lambdas.shared.observability import logger

if TYPE_CHECKING:
    from lambdas.shared.gate import GateDecision

# The audit action of a refused decision (outcome ``denied``).
DECISION_REFUSED = "approval.decision_refused"

# Constraint names raised by migration 026 -> the error a client sees (never the name).
_REFUSALS: dict[str, tuple[type[AppError], str]] = {
    "approval_decisions_not_self": (SelfApproval, "a requester cannot decide their own request"),
    "approval_decisions_decider_permitted": (
        NotADecider,
        "only members allowed to decide approvals in this tenant can decide",
    ),
    "approval_decisions_request_pending": (
        ApprovalNotPending,
        "the approval request is no longer pending",
    ),
    "approval_decisions_request_unexpired": (ApprovalExpired, "the approval request has expired"),
    "approval_decisions_one_per_decider": (
        AlreadyDecided,
        "this user has already decided this request",
    ),
    "approval_decisions_request_in_tenant": (ApprovalNotFound, "approval request not found"),
    "approval_decisions_reason_required": (
        ReasonRequired,
        "a decision needs a reason of 1 to 2000 characters",
    ),
    "approval_decisions_decision_check": (
        InvalidApprovalRequest,
        "a decision is approved or rejected",
    ),
    "approval_requests_start_pending": (
        InvalidApprovalRequest,
        "an approval request starts pending",
    ),
    "approval_requests_subject_required": (
        InvalidApprovalRequest,
        "an approval request names its subject",
    ),
    "approval_requests_requester_required": (
        InvalidApprovalRequest,
        "an approval request names the user or agent that asks",
    ),
    "approval_requests_expiry_required": (
        InvalidApprovalRequest,
        "an approval request expires in the future",
    ),
    "approval_requests_escalation_before_expiry": (
        InvalidApprovalRequest,
        "escalation must come before expiry",
    ),
    "approval_requests_quorum_bounded": (
        InvalidApprovalRequest,
        "an approval request needs 1 to 10 approvals",
    ),
    "approval_requests_required_approvals_check": (
        InvalidApprovalRequest,
        "an approval request needs 1 to 10 approvals",
    ),
    "approval_requests_escalation_role_fkey": (
        InvalidApprovalRequest,
        "the escalation role does not exist",
    ),
    "approval_requests_evaluation_id_fkey": (
        InvalidApprovalRequest,
        "the evaluation does not exist",
    ),
    "approval_requests_agent_id_fkey": (InvalidApprovalRequest, "the agent does not exist"),
    "approval_requests_terminal": (
        ApprovalNotPending,
        "the approval request is no longer pending",
    ),
    "approval_requests_transition": (
        InvalidTransition,
        "the approval request cannot make that change now",
    ),
    "approval_requests_immutable": (
        InvalidTransition,
        "what an approval request asks cannot change",
    ),
    "approval_requests_escalation": (
        InvalidTransition,
        "only a pending request past its escalation time is escalated, once",
    ),
}


def refusal_for(error: psycopg.Error) -> AppError | None:
    """The domain error for a database refusal of migration 026, or None if it is not one."""
    diag = getattr(error, "diag", None)
    refusal = _REFUSALS.get((diag.constraint_name if diag else None) or "")
    if refusal is None:
        return None
    kind, message = refusal
    return kind(message)


@contextmanager
def translate_errors() -> Iterator[None]:
    """A refusal by migration 026 becomes its domain error. A caller that must keep using the
    transaction after a refusal runs the statement in a savepoint inside this block."""
    try:
        yield
    except (psycopg.errors.IntegrityError, psycopg.errors.InsufficientPrivilege) as error:
        domain = refusal_for(error)
        if domain is None:
            raise
        raise domain from error


# A pending request past its expiry can no longer be decided (``decide_approval_v4`` refuses it):
# it reads ``expired`` from that moment, before the sweeper writes the status, its audit row and
# its event. Every read of a request's document, and the list's status filters, use this.
_EFFECTIVE_STATUS = """
CASE WHEN r.status = 'pending' AND r.expires_at <= now() THEN 'expired' ELSE r.status END"""

_REQUEST_DOCUMENT = (
    """
SELECT r.id, r.subject_kind, r.subject_id, r.action_type, r.summary, r.payload,"""
    + _EFFECTIVE_STATUS
    + """ AS status,
       r.requester_kind, r.requested_by, r.agent_id, r.evaluation_id, r.required_approvals,
       r.expires_at, r.escalate_at, r.escalation_role, r.escalated_at, r.decided_at,
       r.canceled_by, r.created_at,
       (SELECT count(*) FROM alquimista_platform.approval_decisions AS d
        WHERE d.tenant_id = r.tenant_id AND d.approval_request_id = r.id
          AND d.decision = 'approved') AS approvals
"""
)

# The list's status filter, one statement per status so that each plans on its own index: a
# plain status is the (tenant, status, created_at) index; ``pending`` excludes, and ``expired``
# includes, the pending requests already past their expiry (the partial due index).
_STATUS_FILTERS: dict[Status | None, LiteralString] = {
    None: "",
    "pending": "AND r.status = 'pending' AND r.expires_at > now()",
    "expired": """AND r.status IN ('expired', 'pending')
              AND (r.status = 'expired' OR r.expires_at <= now())""",
    "approved": "AND r.status = 'approved'",
    "rejected": "AND r.status = 'rejected'",
    "canceled": "AND r.status = 'canceled'",
}

_WITH_DECISIONS = """,
       coalesce((
           SELECT jsonb_agg(jsonb_build_object(
                      'id', d.id, 'decided_by', d.decided_by, 'decision', d.decision,
                      'reason', d.reason, 'decided_at', d.decided_at)
                  ORDER BY d.decided_at, d.id)
           FROM alquimista_platform.approval_decisions AS d
           WHERE d.tenant_id = r.tenant_id AND d.approval_request_id = r.id
       ), '[]'::jsonb) AS decisions,
       (SELECT jsonb_build_object(
                   'id', e.id, 'rule_id', e.rule_id, 'rule_version', e.rule_version,
                   'verdict', e.verdict, 'reason', e.reason, 'evaluated_at', e.evaluated_at)
        FROM alquimista_platform.policy_evaluations AS e
        WHERE e.tenant_id = r.tenant_id AND e.id = r.evaluation_id) AS evaluation
"""


_DECIDE_SQL: LiteralString = """
SELECT decision_id, status, approvals, required_approvals, created_at, decided_at
FROM alquimista_platform.decide_approval_v4(%s, %s, %s, %s, %s)
"""
# How a statement is run: ``Connection.execute`` or ``UnitOfWork.commit_with``.
Send = Callable[[LiteralString, tuple[Any, ...]], Cursor]


def _record(row: dict[str, Any] | None) -> ApprovalRecord:
    if row is None:
        raise LookupError("the statement returned no row")
    return ApprovalRecord.model_validate(row)


class ApprovalRepository:
    """The tenant's approval requests; every statement filters by the tenant too."""

    def __init__(
        self, conn: Connection, tenant_id: UUID, *, request_ref: str | None = None
    ) -> None:
        self._conn = conn
        self._tenant_id = tenant_id
        self._request_ref = request_ref  # the request id its audit rows carry

    def find_or_create(self, request: NewApprovalRequest) -> tuple[ApprovalRecord, bool]:
        """The pending request for the subject, creating it if there is none; True when
        created. A concurrent creator is settled by the one-pending-per-subject index."""
        params = request.model_dump() | {
            "tenant": self._tenant_id,
            "payload": Jsonb(request.payload),
        }
        for _ in range(3):
            with translate_errors(), self._conn.transaction():
                row = self._conn.execute(
                    """
                    INSERT INTO alquimista_platform.approval_requests
                        (tenant_id, subject_kind, subject_id, action_type, summary, payload,
                         requester_kind, requested_by, agent_id, evaluation_id,
                         required_approvals, expires_at, escalate_at, escalation_role)
                    VALUES (%(tenant)s, %(subject_kind)s, %(subject_id)s, %(action_type)s,
                            %(summary)s, %(payload)s, %(requester_kind)s, %(requested_by)s,
                            %(agent_id)s, %(evaluation_id)s, %(required_approvals)s,
                            %(expires_at)s, %(escalate_at)s, %(escalation_role)s)
                    ON CONFLICT (tenant_id, subject_kind, subject_id)
                        WHERE status = 'pending' AND subject_kind IS NOT NULL
                          AND subject_id IS NOT NULL
                    DO NOTHING
                    RETURNING id
                    """,
                    params,
                ).fetchone()
            if row is not None:
                return _record(self._get_row(row["id"], decisions=False)), True
            existing = self.find_pending(request.subject_kind, request.subject_id)
            if existing is not None:
                return existing, False
            # The pending one was decided between our insert and our read: try again.
        raise InvalidTransition("the subject's approval request keeps changing; retry")

    def find_pending(self, subject_kind: str, subject_id: str) -> ApprovalRecord | None:
        row = self._conn.execute(
            _REQUEST_DOCUMENT
            + """
            FROM alquimista_platform.approval_requests AS r
            WHERE r.tenant_id = %s AND r.subject_kind = %s AND r.subject_id = %s
              AND r.status = 'pending'
            """,
            (self._tenant_id, subject_kind, subject_id),
        ).fetchone()
        return _record(row) if row else None

    def latest_for_subject(self, subject_kind: str, subject_id: str) -> ApprovalRecord | None:
        """The subject's most recent request, whatever its status (the gate's re-check)."""
        row = self._conn.execute(
            _REQUEST_DOCUMENT
            + """
            FROM alquimista_platform.approval_requests AS r
            WHERE r.tenant_id = %s AND r.subject_kind = %s AND r.subject_id = %s
            ORDER BY r.created_at DESC, r.id DESC
            LIMIT 1
            """,
            (self._tenant_id, subject_kind, subject_id),
        ).fetchone()
        return _record(row) if row else None

    def get(self, request_id: UUID) -> ApprovalRecord | None:
        """One request with its decisions and the evaluation that caused it."""
        row = self._get_row(request_id, decisions=True)
        return _record(row) if row else None

    def _get_row(self, request_id: UUID, *, decisions: bool) -> dict[str, Any] | None:
        return self._conn.execute(
            _REQUEST_DOCUMENT
            + (_WITH_DECISIONS if decisions else "")
            + """
            FROM alquimista_platform.approval_requests AS r
            WHERE r.tenant_id = %s AND r.id = %s
            """,
            (self._tenant_id, request_id),
        ).fetchone()

    def list_requests(
        self,
        *,
        status: Status | None = None,
        waiting_for: UUID | None = None,
        requested_by: UUID | None = None,
        before: tuple[datetime, UUID] | None = None,
        limit: int = 50,
    ) -> list[ApprovalRecord]:
        """Requests, newest first (keyset ``before`` = (created_at, id) of the last seen).

        ``status`` filters on the status a client reads: a pending request past its expiry is
        ``expired`` (not ``pending``) before the sweeper writes it. ``waiting_for``: pending,
        unexpired requests that user may decide and has not, and did not ask for.
        ``requested_by``: the user's own requests.
        """
        rows = self._conn.execute(
            _REQUEST_DOCUMENT
            + """
            FROM alquimista_platform.approval_requests AS r
            WHERE r.tenant_id = %(tenant)s
            """
            + _STATUS_FILTERS[status]
            + """
              AND (%(mine)s::uuid IS NULL OR r.requested_by = %(mine)s)
              AND (%(me)s::uuid IS NULL OR (
                    r.status = 'pending' AND r.expires_at > now()
                    AND r.requested_by IS DISTINCT FROM %(me)s
                    AND NOT EXISTS (
                        SELECT 1 FROM alquimista_platform.approval_decisions AS d
                        WHERE d.tenant_id = r.tenant_id AND d.approval_request_id = r.id
                          AND d.decided_by = %(me)s)
                    -- the tenant's parameter, not r.tenant_id: checked once, not per row
                    AND alquimista_platform.holds_permission_v1(
                        %(tenant)s, %(me)s, 'approvals:decide')))
              AND (%(before_at)s::timestamptz IS NULL
                   OR (r.created_at, r.id) < (%(before_at)s, %(before_id)s))
            ORDER BY r.created_at DESC, r.id DESC
            LIMIT %(limit)s
            """,
            {
                "tenant": self._tenant_id,
                "mine": requested_by,
                "me": waiting_for,
                "before_at": before[0] if before else None,
                "before_id": before[1] if before else None,
                "limit": limit,
            },
        ).fetchall()
        return [_record(row) for row in rows]

    def decide(
        self,
        request_id: UUID,
        *,
        decider: UUID,
        decision: Verdict,
        reason: str,
        send: Send | None = None,
    ) -> DecisionOutcome | None:
        """Record a decision, with its audit row, its ``approval.decided`` event and, when it
        ends the request, the requester's notification, in one call of ``decide_approval_v4``
        (migration 058): the database applies the rules and the quorum under a lock on the
        request and returns the request's state after it, with when it was opened and decided.

        ``send`` runs the statement; the unit of work passes its ``commit_with`` so that COMMIT
        travels with it, and a refusal aborts that transaction, which the unit of work then rolls
        back. Without ``send`` the call runs in a savepoint of the open transaction, so a refusal
        leaves the caller's transaction usable."""
        params = (request_id, decider, decision, reason, self._request_ref)
        with translate_errors():
            if send is None:
                with self._conn.transaction():
                    row = self._conn.execute(_DECIDE_SQL, params).fetchone()
            else:
                row = send(_DECIDE_SQL, params).fetchone()
        if row is None:
            return None  # no such request in this tenant: the service says so
        return DecisionOutcome(request_id=request_id, **row)

    def cancel(self, request_id: UUID, *, actor: UUID) -> ApprovalRecord | None:
        """The requester withdraws a pending request."""
        with translate_errors(), self._conn.transaction():
            row = self._conn.execute(
                """
                UPDATE alquimista_platform.approval_requests
                SET status = 'canceled', canceled_by = %s
                WHERE tenant_id = %s AND id = %s AND status = 'pending' AND requested_by = %s
                RETURNING id
                """,
                (actor, self._tenant_id, request_id, actor),
            ).fetchone()
        if row is not None:
            return _record(self._get_row(request_id, decisions=True))
        current = self.get(request_id)
        if current is None:
            return None  # no such request in this tenant: the service says so
        if current.status != "pending":
            raise ApprovalNotPending(f"the approval request is already {current.status}")
        raise NotTheRequester("only the requester can cancel an approval request")

    def notify_requested(self, request: ApprovalRecord) -> int:
        """Tell everyone who may decide (except the requester) that a request waits."""
        return notify(
            self._conn,
            self._tenant_id,
            request,
            "approval.requested",
            permission="approvals:decide",
            except_user=request.requested_by,
        )


class ApprovalSweepRepository:
    """The scheduled sweeper's SQL: runs across tenants through ``sweep_approvals_v1``, which
    scopes itself to each tenant in turn."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def sweep(self, *, limit: int = 500) -> list[SweptRequest]:
        """Expire pending requests past ``expires_at`` and escalate those past
        ``escalate_at``, at most ``limit`` of each per tenant; rows locked by a concurrent
        decision are skipped until the next run."""
        rows = self._conn.execute(
            """
            SELECT tenant_id, request_id, change, escalation_role, requested_by
            FROM alquimista_platform.sweep_approvals_v1(%s)
            """,
            (limit,),
        ).fetchall()
        return [SweptRequest.model_validate(row) for row in rows]

    def _scoped(self, changes: list[SweptRequest]) -> Iterator[SweptRequest]:
        """Each change with the transaction scoped to its tenant; the caller's scope is
        restored when the iteration ends."""
        caller = self._conn.execute(
            "SELECT current_setting(%s, true) AS tenant", (TENANT_SETTING,)
        ).fetchone()
        try:
            for change in changes:
                self._conn.execute(
                    "SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(change.tenant_id))
                )
                yield change
        finally:
            self._conn.execute(
                "SELECT set_config(%s, %s, true)",
                (TENANT_SETTING, (caller or {}).get("tenant") or ""),
            )

    def expire(self, tenant_id: UUID, request_id: UUID) -> list[SweptRequest]:
        """Expire one request now, as the sweeper's next run would: the change when it was
        pending past ``expires_at``, nothing otherwise (a concurrent sweeper or decision won).
        The caller records it with ``notify`` and ``record``, as the sweeper does.

        Not ``sweep_approvals_v1`` narrowed to one id: the sweeper skips rows a decision holds
        locked (``SKIP LOCKED``, the next run takes them); the gate must wait for that decision
        and then read what it left, or it would open a second request beside a live one."""
        rows = self._conn.execute(
            """
            UPDATE alquimista_platform.approval_requests AS r SET status = 'expired'
            WHERE r.tenant_id = %s AND r.id = %s AND r.status = 'pending'
              AND r.expires_at <= now()
            RETURNING r.tenant_id, r.id AS request_id, 'expired' AS change, r.escalation_role,
                      r.requested_by
            """,
            (tenant_id, request_id),
        ).fetchall()
        return [SweptRequest.model_validate(row) for row in rows]

    def notify(self, changes: list[SweptRequest]) -> int:
        """Notifications for what ``sweep`` changed: the requester of an expired request; the
        escalation role's members (else whoever may decide) for an escalated one."""
        written = 0
        for change in self._scoped(changes):
            request = ApprovalRepository(self._conn, change.tenant_id).get(change.request_id)
            if request is None:
                continue
            if change.change == "expired":
                if request.requested_by is not None:
                    written += notify(
                        self._conn,
                        change.tenant_id,
                        request,
                        "approval.expired",
                        user=request.requested_by,
                    )
            else:
                written += notify(
                    self._conn,
                    change.tenant_id,
                    request,
                    "approval.escalated",
                    role=request.escalation_role,
                    permission=None if request.escalation_role else "approvals:decide",
                    except_user=request.requested_by,
                )
        return written

    def record(self, changes: list[SweptRequest]) -> int:
        """Each change's audit row (in its tenant's chain, by the system) and its outbox event
        (``approval.expired`` / ``approval.escalated``). Returns how many were recorded."""
        # the writers load on the first write, not with every function that imports this module
        from lambdas.shared.audit import AuditWriter  # noqa: PLC0415
        from lambdas.shared.events import validated_payload  # noqa: PLC0415
        from lambdas.shared.outbox import OutboxWriter  # noqa: PLC0415

        for change in self._scoped(changes):
            event_type = f"approval.{change.change}"
            payload: dict[str, Any] = (
                {"approval_id": change.request_id, "requested_by": change.requested_by}
                if change.change == "expired"
                else {"approval_id": change.request_id, "escalation_role": change.escalation_role}
            )
            data = validated_payload(event_type, 1, "approval", payload)
            AuditWriter(
                self._conn, tenant_id=change.tenant_id, actor_id=None, actor_type="system"
            ).append(
                event_type,
                resource_type="approval",
                resource_id=str(change.request_id),
                details=data,
            )
            OutboxWriter(self._conn, tenant_id=change.tenant_id).emit(
                event_type,
                aggregate_type="approval",
                aggregate_id=str(change.request_id),
                payload=data,
            )
        return len(changes)


class ApprovalsUnitOfWork(UnitOfWork):
    approvals: ApprovalRepository

    def authorize(
        self, subject: Subject, *, summary: str, payload: dict[str, Any], requested_by_agent: bool
    ) -> GateDecision:
        """The gate, in this unit's transaction (imported here: the gate uses this module)."""
        from lambdas.shared.gate import authorize  # noqa: PLC0415

        return authorize(
            self, subject, summary=summary, payload=payload, requested_by_agent=requested_by_agent
        )

    def decide_and_commit(
        self, request_id: UUID, *, decider: UUID, decision: Verdict, reason: str
    ) -> DecisionOutcome | None:
        """The decision (``ApprovalRepository.decide``) as the unit's last statement, COMMIT
        sent with it: one round trip after the request's opening."""
        return self.approvals.decide(
            request_id, decider=decider, decision=decision, reason=reason, send=self.commit_with
        )

    def record_refusal(self, request_id: UUID, *, decider: UUID, code: str) -> None:
        """Audit a refused decision as ``denied`` (``approval.decision_refused``; metadata: the
        request's id and the refusal's code) in the tenant's chain, in a transaction of its
        own (``RequestScope.record_denial``): call it after the decision's transaction rolled
        back. The refusal is answered even if this fails."""
        if self.tenant_id is None:
            raise RuntimeError("the approvals unit of work needs a tenant")
        try:
            self.scope.record_denial(
                tenant_id=self.tenant_id,
                actor_id=decider,
                action=DECISION_REFUSED,
                resource_type="approval",
                resource_id=str(request_id),
                details={"approval_id": str(request_id), "code": code},
            )
        except psycopg.Error:
            logger.exception("could not audit a refused decision")

    def _on_enter(self) -> None:
        if self.tenant_id is None:
            raise RuntimeError("the approvals unit of work needs a tenant")
        self.approvals = ApprovalRepository(
            self.conn, self.tenant_id, request_ref=self.scope.request_id
        )


class ApprovalSweepUnitOfWork(UnitOfWork):
    """No tenant: ``sweep_approvals_v1`` scopes itself to each tenant in turn."""

    sweeper: ApprovalSweepRepository

    def _on_enter(self) -> None:
        self.sweeper = ApprovalSweepRepository(self.conn)


def backlog(conn: Connection) -> tuple[int, datetime | None]:
    """Pending requests across tenants and the oldest one's creation time
    (``approval_backlog_v1``, migration 032)."""
    row = conn.execute(
        "SELECT pending, oldest_created_at FROM alquimista_platform.approval_backlog_v1()"
    ).fetchone()
    if row is None:
        return 0, None
    return int(row["pending"]), row["oldest_created_at"]
