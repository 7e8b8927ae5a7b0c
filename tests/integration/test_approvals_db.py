"""Approval invariants enforced by PostgreSQL (migration 026), exercised as the runtime role
through ``ApprovalRepository`` and with plain SQL that tries to go around it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from lambdas.approvals.errors import (
    AlreadyDecided,
    ApprovalExpired,
    ApprovalNotFound,
    ApprovalNotPending,
    InvalidApprovalRequest,
    NotADecider,
    NotTheRequester,
    ReasonRequired,
    SelfApproval,
)
from lambdas.approvals.models import ApprovalRecord, NewApprovalRequest
from lambdas.approvals.notifications import notify
from lambdas.approvals.repository import ApprovalRepository, ApprovalSweepRepository
from lambdas.shared.constants import TENANT_SETTING
from lambdas.shared.errors import AppError
from tests.support.database import TestDatabase
from tests.support.factories import TestTenant, TestUser, create_tenant, create_user

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def acme(db: TestDatabase) -> TestTenant:
    with db.owner() as conn:
        tenant = create_tenant(conn)
        tenant.users["admin2"] = create_user(conn, tenant.id, "admin")
        tenant.users["admin3"] = create_user(conn, tenant.id, "admin")
    return tenant


@pytest.fixture
def globex(db: TestDatabase) -> TestTenant:
    with db.owner() as conn:
        return create_tenant(conn)


@contextmanager
def runtime(db: TestDatabase, tenant_id: uuid.UUID | None) -> Iterator[Conn]:
    """A runtime-role transaction scoped to ``tenant_id``, committed if the block succeeds."""
    with db.runtime() as conn:
        conn.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(tenant_id or "")))
        yield conn
        conn.commit()


def _request(
    db: TestDatabase, tenant: TestTenant, requester: TestUser, *, quorum: int = 1, **extra: Any
) -> ApprovalRecord:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "subject_kind": "chat.message",
        "subject_id": str(uuid.uuid4()),
        "action_type": "chat.send",
        "summary": "a message that mentions a CPF",
        "requested_by": requester.id,
        "required_approvals": quorum,
        "expires_at": now + timedelta(hours=1),
    } | extra
    with runtime(db, tenant.id) as conn:
        record, created = ApprovalRepository(conn, tenant.id).find_or_create(
            NewApprovalRequest(**fields)
        )
    assert created
    return record


def _decide(
    db: TestDatabase,
    tenant_id: uuid.UUID,
    request_id: uuid.UUID,
    decider: TestUser,
    decision: str = "approved",
    reason: str = "checked with the customer",
) -> Any:
    with runtime(db, tenant_id) as conn:
        return ApprovalRepository(conn, tenant_id).decide(
            request_id,
            decider=decider.id,
            decision=decision,  # type: ignore[arg-type]
            reason=reason,
        )


def _status(db: TestDatabase, request_id: uuid.UUID) -> str:
    with db.owner() as conn:
        row = conn.execute(
            "SELECT status FROM alquimista_platform.approval_requests WHERE id = %s",
            (request_id,),
        ).fetchone()
    assert row is not None
    return str(row["status"])


def _backdate(db: TestDatabase, request_id: uuid.UUID, **columns: datetime) -> None:
    """Move a request's deadlines into the past (as the owner, triggers off: only tests may)."""
    with db.owner() as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        for column, value in columns.items():
            assert column in {"expires_at", "escalate_at"}
            conn.execute(
                f"UPDATE alquimista_platform.approval_requests SET {column} = %s WHERE id = %s",
                (value, request_id),
            )


def test_a_quorum_of_two_is_approved_only_after_the_second_approval(db, acme) -> None:
    request = _request(db, acme, acme.user("member"), quorum=2)

    first = _decide(db, acme.id, request.id, acme.user("admin"))
    assert (first.status, first.approvals, first.required_approvals) == ("pending", 1, 2)

    second = _decide(db, acme.id, request.id, acme.user("admin2"))
    assert (second.status, second.approvals) == ("approved", 2)
    with runtime(db, acme.id) as conn:
        stored = ApprovalRepository(conn, acme.id).get(request.id)
    assert stored is not None
    assert stored.status == "approved"
    assert stored.decided_at is not None
    assert [d.reason for d in stored.decisions] == ["checked with the customer"] * 2


def test_any_rejection_rejects(db, acme) -> None:
    request = _request(db, acme, acme.user("member"), quorum=3)
    _decide(db, acme.id, request.id, acme.user("admin"))

    outcome = _decide(db, acme.id, request.id, acme.user("admin2"), "rejected")

    assert outcome.status == "rejected"
    assert _status(db, request.id) == "rejected"


def test_self_approval_is_refused(db, acme) -> None:
    request = _request(db, acme, acme.user("admin"))

    with pytest.raises(SelfApproval):
        _decide(db, acme.id, request.id, acme.user("admin"))
    assert _status(db, request.id) == "pending"


def test_a_decider_without_approvals_decide_is_refused(db, acme) -> None:
    request = _request(db, acme, acme.user("admin"))

    for role in ("member", "viewer"):
        with pytest.raises(NotADecider):
            _decide(db, acme.id, request.id, acme.user(role))
    assert _status(db, request.id) == "pending"


def test_a_suspended_admin_cannot_decide(db, acme) -> None:
    with db.owner() as conn:
        suspended = create_user(conn, acme.id, "admin", status="suspended")
    request = _request(db, acme, acme.user("member"))

    with pytest.raises(NotADecider):
        _decide(db, acme.id, request.id, suspended)


def test_an_expired_request_cannot_be_decided(db, acme) -> None:
    request = _request(db, acme, acme.user("member"))
    _backdate(db, request.id, expires_at=datetime.now(UTC) - timedelta(seconds=1))

    with pytest.raises(ApprovalExpired):
        _decide(db, acme.id, request.id, acme.user("admin"))


def test_a_decided_request_cannot_be_decided_again(db, acme) -> None:
    request = _request(db, acme, acme.user("member"))
    _decide(db, acme.id, request.id, acme.user("admin"), "rejected")

    with pytest.raises(ApprovalNotPending):
        _decide(db, acme.id, request.id, acme.user("admin2"))


def test_one_decision_per_decider(db, acme) -> None:
    request = _request(db, acme, acme.user("member"), quorum=2)
    _decide(db, acme.id, request.id, acme.user("admin"))

    with pytest.raises(AlreadyDecided):
        _decide(db, acme.id, request.id, acme.user("admin"))
    assert _status(db, request.id) == "pending"


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_decision_needs_a_reason(db, acme, reason: str) -> None:
    request = _request(db, acme, acme.user("member"))

    with pytest.raises(ReasonRequired):
        _decide(db, acme.id, request.id, acme.user("admin"), reason=reason)


def test_a_refused_decision_leaves_the_callers_transaction_usable(db, acme) -> None:
    request = _request(db, acme, acme.user("admin"))
    with runtime(db, acme.id) as conn:
        repo = ApprovalRepository(conn, acme.id)
        with pytest.raises(SelfApproval):
            repo.decide(request.id, decider=acme.user("admin").id, decision="approved", reason="x")
        outcome = repo.decide(
            request.id, decider=acme.user("admin2").id, decision="approved", reason="ok"
        )
    assert outcome is not None
    assert outcome.status == "approved"


def _race(db: TestDatabase, tenant: TestTenant, request_id: uuid.UUID) -> dict[str, object]:
    """admin approves and admin2 rejects at the same moment, on two connections."""
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def decide(who: str, decision: str) -> None:
        with db.runtime() as conn:
            conn.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(tenant.id)))
            repo = ApprovalRepository(conn, tenant.id)
            barrier.wait()
            try:
                outcome = repo.decide(
                    request_id,
                    decider=tenant.user(who).id,
                    decision=decision,  # type: ignore[arg-type]
                    reason="race",
                )
                results[who] = outcome.status if outcome is not None else "not found"
                conn.commit()
            except AppError as error:
                conn.rollback()
                results[who] = error

    threads = [
        threading.Thread(target=decide, args=("admin", "approved")),
        threading.Thread(target=decide, args=("admin2", "rejected")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_concurrent_approve_and_reject_end_in_exactly_one_terminal_state(db, acme) -> None:
    for _ in range(5):
        request = _request(db, acme, acme.user("member"))

        results = _race(db, acme, request.id)

        winners = [v for v in results.values() if isinstance(v, str)]
        losers = [v for v in results.values() if isinstance(v, ApprovalNotPending)]
        assert len(winners) == 1, results
        assert len(losers) == 1, results
        assert _status(db, request.id) == winners[0]
        with db.owner() as conn:
            count = conn.execute(
                """
                SELECT count(*) AS n FROM alquimista_platform.approval_decisions
                WHERE approval_request_id = %s
                """,
                (request.id,),
            ).fetchone()
        assert count is not None
        assert count["n"] == 1


def test_another_tenants_admin_cannot_decide(db, acme, globex) -> None:
    request = _request(db, acme, acme.user("member"))
    outsider = globex.user("admin")

    # Scoped to their own tenant, the request is not there.
    with pytest.raises(ApprovalNotFound):
        _decide(db, globex.id, request.id, outsider)
    # Scoped to acme (a forged scope), they hold no permission there.
    with pytest.raises(NotADecider):
        _decide(db, acme.id, request.id, outsider)
    assert _status(db, request.id) == "pending"
    with runtime(db, globex.id) as conn:
        assert ApprovalRepository(conn, globex.id).get(request.id) is None


def test_the_runtime_role_cannot_approve_with_plain_sql(db, acme) -> None:
    request = _request(db, acme, acme.user("member"), quorum=2)
    _decide(db, acme.id, request.id, acme.user("admin"))
    admin = acme.user("admin").id
    attempts: list[tuple[str, tuple[Any, ...], str]] = [
        ("UPDATE alquimista_platform.approval_requests SET status = 'approved' WHERE id = %s",
         (request.id,), "approval_requests_transition"),
        ("UPDATE alquimista_platform.approval_requests SET status = 'expired' WHERE id = %s",
         (request.id,), "approval_requests_transition"),
        ("UPDATE alquimista_platform.approval_requests SET status = 'canceled', canceled_by = %s"
         " WHERE id = %s", (admin, request.id), "approval_requests_transition"),
        ("UPDATE alquimista_platform.approval_requests SET required_approvals = 1 WHERE id = %s",
         (request.id,), "approval_requests_immutable"),
        ("UPDATE alquimista_platform.approval_requests SET requested_by = NULL WHERE id = %s",
         (request.id,), "approval_requests_immutable"),
        ("UPDATE alquimista_platform.approval_decisions SET decided_by = %s"
         " WHERE approval_request_id = %s", (acme.user("admin2").id, request.id),
         "approval_decisions_immutable"),
    ]  # fmt: skip
    for statement, params, constraint in attempts:
        with db.runtime() as conn:
            conn.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(acme.id)))
            with pytest.raises(psycopg.errors.CheckViolation) as caught:
                conn.execute(statement, params)
            assert caught.value.diag.constraint_name == constraint, statement
    # A decision inserted by hand still goes through every rule.
    with db.runtime() as conn:
        conn.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(acme.id)))
        with pytest.raises(psycopg.errors.CheckViolation) as caught:
            conn.execute(
                """
                INSERT INTO alquimista_platform.approval_decisions
                    (tenant_id, approval_request_id, decided_by, decision, reason)
                VALUES (%s, %s, %s, 'approved', 'me')
                """,
                (acme.id, request.id, acme.user("member").id),
            )
        assert caught.value.diag.constraint_name == "approval_decisions_not_self"
    assert _status(db, request.id) == "pending"


def test_a_terminal_request_cannot_be_reopened(db, acme) -> None:
    request = _request(db, acme, acme.user("member"))
    _decide(db, acme.id, request.id, acme.user("admin"), "rejected")

    with runtime(db, acme.id) as conn, pytest.raises(psycopg.errors.CheckViolation) as caught:
        conn.execute(
            "UPDATE alquimista_platform.approval_requests SET status = 'pending' WHERE id = %s",
            (request.id,),
        )
    assert caught.value.diag.constraint_name == "approval_requests_terminal"


def test_a_request_cannot_be_inserted_already_approved_or_without_expiry(db, acme) -> None:
    base = {
        "tenant": acme.id,
        "requester": acme.user("member").id,
        "expires": datetime.now(UTC) + timedelta(hours=1),
        "status": "pending",
    }
    for changes, constraint in (
        ({"status": "approved"}, "approval_requests_start_pending"),
        ({"expires": None}, "approval_requests_expiry_required"),
        (
            {"expires": datetime.now(UTC) - timedelta(minutes=1)},
            "approval_requests_expiry_required",
        ),
        ({"requester": None}, "approval_requests_requester_required"),
    ):
        with runtime(db, acme.id) as conn, pytest.raises(psycopg.errors.CheckViolation) as caught:
            conn.execute(
                """
                INSERT INTO alquimista_platform.approval_requests
                    (tenant_id, subject_kind, subject_id, action_type, summary, requested_by,
                     status, expires_at)
                VALUES (%(tenant)s, 'chat.message', 'm-1', 'chat.send', 's', %(requester)s,
                        %(status)s, %(expires)s)
                """,
                base | changes,
            )
        assert caught.value.diag.constraint_name == constraint


def test_the_repository_maps_an_invalid_request_to_a_domain_error(db, acme) -> None:
    with pytest.raises(InvalidApprovalRequest):
        _request(db, acme, acme.user("member"), expires_at=datetime.now(UTC) - timedelta(1))


def test_one_pending_request_per_subject(db, acme) -> None:
    first = _request(db, acme, acme.user("member"))
    with runtime(db, acme.id) as conn:
        again, created = ApprovalRepository(conn, acme.id).find_or_create(
            NewApprovalRequest(
                subject_kind="chat.message",
                subject_id=str(first.subject_id),
                action_type="chat.send",
                summary="the same message again",
                requested_by=acme.user("member").id,
                expires_at=datetime.now(UTC) + timedelta(hours=2),
            )
        )
    assert not created
    assert again.id == first.id
    # Once decided, the subject may be asked about again.
    _decide(db, acme.id, first.id, acme.user("admin"), "rejected")
    second = _request(db, acme, acme.user("member"), subject_id=first.subject_id)
    assert second.id != first.id
    with runtime(db, acme.id) as conn:
        latest = ApprovalRepository(conn, acme.id).latest_for_subject(
            "chat.message", str(first.subject_id)
        )
    assert latest is not None
    assert latest.id == second.id


def test_only_the_requester_cancels(db, acme) -> None:
    request = _request(db, acme, acme.user("member"))
    with runtime(db, acme.id) as conn, pytest.raises(NotTheRequester):
        ApprovalRepository(conn, acme.id).cancel(request.id, actor=acme.user("admin").id)
    with runtime(db, acme.id) as conn:
        canceled = ApprovalRepository(conn, acme.id).cancel(
            request.id, actor=acme.user("member").id
        )
    assert canceled is not None
    assert canceled.status == "canceled"
    assert canceled.canceled_by == acme.user("member").id
    with runtime(db, acme.id) as conn, pytest.raises(ApprovalNotPending):
        ApprovalRepository(conn, acme.id).cancel(request.id, actor=acme.user("member").id)
    with pytest.raises(ApprovalNotPending):
        _decide(db, acme.id, request.id, acme.user("admin"))


def test_lists_filter_by_status_waiting_for_me_and_mine(db, acme, globex) -> None:
    mine = _request(db, acme, acme.user("admin"))
    theirs = _request(db, acme, acme.user("member"), quorum=2)
    decided = _request(db, acme, acme.user("member"))
    _decide(db, acme.id, decided.id, acme.user("admin2"), "rejected")
    _decide(db, acme.id, theirs.id, acme.user("admin2"))
    _request(db, globex, globex.user("member"))

    with runtime(db, acme.id) as conn:
        repo = ApprovalRepository(conn, acme.id)
        admin = acme.user("admin").id
        waiting_for_admin = {r.id for r in repo.list_requests(waiting_for=admin)}
        waiting_for_admin2 = {r.id for r in repo.list_requests(waiting_for=acme.user("admin2").id)}
        waiting_for_member = repo.list_requests(waiting_for=acme.user("member").id)
        own = [r.id for r in repo.list_requests(requested_by=admin)]
        rejected = [r.id for r in repo.list_requests(status="rejected")]
        everything = repo.list_requests()
        page = repo.list_requests(limit=2)
        rest = repo.list_requests(before=(page[-1].created_at, page[-1].id), limit=10)

    assert waiting_for_admin == {theirs.id}  # not their own, not the decided one
    assert waiting_for_admin2 == {mine.id}  # not the one they already approved
    assert waiting_for_member == []  # members do not decide
    assert own == [mine.id]
    assert rejected == [decided.id]
    assert {r.id for r in everything} == {mine.id, theirs.id, decided.id}
    assert [r.id for r in page + rest] == [r.id for r in everything]


def test_the_sweeper_expires_and_escalates_due_requests_across_tenants(db, acme, globex) -> None:
    now = datetime.now(UTC)
    to_expire = _request(db, acme, acme.user("member"))
    to_escalate = _request(
        db,
        globex,
        globex.user("member"),
        escalate_at=now + timedelta(minutes=10),
        escalation_role="admin",
    )
    untouched = _request(db, acme, acme.user("member"), escalate_at=now + timedelta(minutes=10))
    _backdate(db, to_expire.id, expires_at=now - timedelta(seconds=1))
    _backdate(db, to_escalate.id, escalate_at=now - timedelta(seconds=1))

    with runtime(db, None) as conn:
        swept = ApprovalSweepRepository(conn).sweep()
        scope = conn.execute("SELECT current_setting(%s, true) AS t", (TENANT_SETTING,)).fetchone()
    assert scope is not None
    assert scope["t"] in ("", None)  # the caller's (empty) tenant scope is restored
    with runtime(db, None) as conn:
        again = ApprovalSweepRepository(conn).sweep()

    changes = {(s.request_id, s.change, s.tenant_id) for s in swept}
    assert changes == {
        (to_expire.id, "expired", acme.id),
        (to_escalate.id, "escalated", globex.id),
    }
    assert again == []
    assert _status(db, to_expire.id) == "expired"
    assert _status(db, untouched.id) == "pending"
    with runtime(db, globex.id) as conn:
        escalated = ApprovalRepository(conn, globex.id).get(to_escalate.id)
    assert escalated is not None
    assert escalated.escalated_at is not None
    assert escalated.status == "pending"


def test_escalation_cannot_be_forged_before_it_is_due(db, acme) -> None:
    request = _request(
        db, acme, acme.user("member"), escalate_at=datetime.now(UTC) + timedelta(minutes=5)
    )
    with runtime(db, acme.id) as conn, pytest.raises(psycopg.errors.CheckViolation) as caught:
        conn.execute(
            "UPDATE alquimista_platform.approval_requests SET escalated_at = now() WHERE id = %s",
            (request.id,),
        )
    assert caught.value.diag.constraint_name == "approval_requests_escalation"


def test_removing_the_requesting_user_keeps_the_request(db, acme) -> None:
    with db.owner() as conn:
        leaving = create_user(conn, acme.id, "member")
    request = _request(db, acme, leaving)

    with db.owner() as conn:
        conn.execute("DELETE FROM alquimista_platform.users WHERE id = %s", (leaving.id,))

    with runtime(db, acme.id) as conn:
        kept = ApprovalRepository(conn, acme.id).get(request.id)
    assert kept is not None
    assert kept.requested_by is None
    assert kept.status == "pending"


def _decided_notes(db: TestDatabase, request_id: uuid.UUID) -> list[dict[str, Any]]:
    with db.owner() as conn:
        return conn.execute(
            """
            SELECT user_id, title, body, data FROM alquimista_platform.notifications
            WHERE kind = 'approval.decided' AND data ->> 'approval_request_id' = %s
            ORDER BY created_at, id
            """,
            (str(request_id),),
        ).fetchall()


def test_a_decision_inserted_with_plain_sql_still_reaches_the_quorum(db, acme) -> None:
    # Given a request for two approvals
    request = _request(db, acme, acme.user("member"), quorum=2)
    insert = """
        INSERT INTO alquimista_platform.approval_decisions
            (tenant_id, approval_request_id, decided_by, decision, reason)
        VALUES (%s, %s, %s, 'approved', 'checked')
    """
    # When each approval is inserted by hand, around decide_approval_v4
    for decider in ("admin", "admin2"):
        with runtime(db, acme.id) as conn:
            conn.execute(insert, (acme.id, request.id, acme.user(decider).id))
        # Then the trigger, not the function, applies the quorum
        assert _status(db, request.id) == ("pending" if decider == "admin" else "approved")


def test_an_unknown_verdict_is_refused_and_nothing_is_written(db, acme) -> None:
    request = _request(db, acme, acme.user("member"))

    with pytest.raises(InvalidApprovalRequest):
        _decide(db, acme.id, request.id, acme.user("admin"), "maybe")

    assert _status(db, request.id) == "pending"
    with db.owner() as conn:
        audit = conn.execute(
            "SELECT count(*) AS n FROM alquimista_platform.audit_logs WHERE resource_id = %s",
            (str(request.id),),
        ).fetchone()
    assert audit is not None
    assert audit["n"] == 0


def test_the_decision_writes_the_text_notify_approval_v1_writes(db, acme) -> None:
    # Given a request that one approval ends, decided through decide_approval_v4
    member = acme.user("member")
    request = _request(db, acme, member)
    _decide(db, acme.id, request.id, acme.user("admin"))
    # When the Python writer (notify_approval_v1) writes the same notice for the requester
    with runtime(db, acme.id) as conn:
        ended = ApprovalRepository(conn, acme.id).get(request.id)
        assert ended is not None
        assert notify(conn, acme.id, ended, "approval.decided", user=member.id) == 1
    # Then both rows say the same (one text: approval_notice_v1)
    by_decision, by_writer = _decided_notes(db, request.id)
    assert by_decision == by_writer
    assert by_decision["user_id"] == member.id
    assert by_decision["title"] == "Approval request approved"
    assert by_decision["body"] == f"a message that mentions a CPF (chat.message {ended.subject_id})"
    assert by_decision["data"] == {
        "approval_request_id": str(request.id),
        "subject_kind": "chat.message",
        "subject_id": ended.subject_id,
        "status": "approved",
    }


def test_a_requester_no_longer_active_is_not_notified_and_the_decision_stands(db, acme) -> None:
    member = acme.user("member")
    request = _request(db, acme, member)
    with db.owner() as conn, conn.transaction():
        conn.execute(
            """
            UPDATE alquimista_platform.memberships SET status = 'suspended'
            WHERE tenant_id = %s AND user_id = %s
            """,
            (acme.id, member.id),
        )

    outcome = _decide(db, acme.id, request.id, acme.user("admin"))

    assert outcome.status == "approved"
    assert _decided_notes(db, request.id) == []
