"""The policies and approvals services over their real units of work (runtime role)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lambdas.approvals import service as approvals
from lambdas.approvals.errors import NotADecider, SelfApproval
from lambdas.approvals.models import NewApprovalRequest
from lambdas.approvals.repository import ApprovalsUnitOfWork, ApprovalSweepUnitOfWork
from lambdas.policies import service as policies
from lambdas.policies.matcher import Subject
from lambdas.policies.models import RuleDraft
from lambdas.policies.repository import PoliciesUnitOfWork
from lambdas.shared.db import Database
from lambdas.shared.runtime import WRITERS
from lambdas.shared.scope import RequestScope
from tests.support.database import TestDatabase
from tests.support.factories import TestTenant, create_tenant, create_user


@pytest.fixture
def database(db: TestDatabase) -> Iterator[Database]:
    database = db.lambda_database()
    yield database
    database.close()


@pytest.fixture
def acme(db: TestDatabase) -> TestTenant:
    with db.owner() as conn:
        tenant = create_tenant(conn)
        tenant.users["admin2"] = create_user(conn, tenant.id, "admin")
    return tenant


def _count(db: TestDatabase, table: str) -> int:
    with db.owner() as conn:
        row = conn.execute(f"SELECT count(*) AS n FROM alquimista_platform.{table}").fetchone()
    assert row is not None
    return int(row["n"])


def _notified(db: TestDatabase, request_id: uuid.UUID) -> set[tuple[str, uuid.UUID]]:
    with db.owner() as conn:
        rows = conn.execute(
            """
            SELECT kind, user_id, body FROM alquimista_platform.notifications
            WHERE data ->> 'approval_request_id' = %s
            """,
            (str(request_id),),
        ).fetchall()
    assert all("529" not in row["body"] for row in rows)  # never the protected content
    return {(row["kind"], row["user_id"]) for row in rows}


def _factory(cls: Any, database: Database, tenant_id: uuid.UUID | None) -> Callable[[], Any]:
    # each unit of work in a scope of its own, as each request of the story would be
    return lambda: cls(RequestScope(lambda: database, writers=WRITERS), tenant_id)


def test_the_checked_story_end_to_end(database, db, acme) -> None:
    policy_uow = _factory(PoliciesUnitOfWork, database, acme.id)
    approval_uow = _factory(ApprovalsUnitOfWork, database, acme.id)
    member = acme.user("member")
    # Given acme's admin made "messages mentioning a CPF need 2 approvals"
    policies.create_rule(
        policy_uow,
        RuleDraft(
            name="CPF needs two approvals",
            effect="require_approval",
            required_approvals=2,
            matcher={"subject_kinds": ["chat.message"], "detectors": ["cpf"]},
        ),
        actor_id=acme.user("admin").id,
    )
    # When a member's matching subject is evaluated
    subject = Subject(kind="chat.message", id="msg-42", text="o cpf é 529.982.247-25")
    verdict = policies.dry_run(policy_uow, subject, actor_id=member.id)
    assert verdict.effect == "require_approval"
    opened = approvals.open_request(
        approval_uow,
        NewApprovalRequest(
            subject_kind=subject.kind,
            subject_id="msg-42",
            action_type="chat.send",
            summary="chat message held by policy",
            requested_by=member.id,
            evaluation_id=verdict.evaluation_id,
            required_approvals=verdict.required_approvals or 1,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        ),
    ).request
    # Then the member cannot approve it, one admin leaves it pending, a second approves it
    with pytest.raises(SelfApproval):
        approvals.decide(
            approval_uow, opened.id, decider=member.id, decision="approved", reason="mine"
        )
    with pytest.raises(NotADecider):
        approvals.decide(
            approval_uow, opened.id, decider=acme.user("viewer").id, decision="approved",
            reason="looks fine",
        )  # fmt: skip
    decisions_before = _count(db, "approval_decisions")
    first = approvals.decide(
        approval_uow, opened.id, decider=acme.user("admin").id, decision="approved", reason="ok"
    )
    second = approvals.decide(
        approval_uow, opened.id, decider=acme.user("admin2").id, decision="approved", reason="ok"
    )
    assert (first.status, second.status) == ("pending", "approved")
    assert _count(db, "approval_decisions") == decisions_before + 2
    assert _notified(db, opened.id) == {
        ("approval.requested", acme.user("admin").id),
        ("approval.requested", acme.user("admin2").id),
        ("approval.decided", member.id),
    }
    stored = approvals.get_approval(approval_uow, opened.id)
    assert stored.evaluation is not None
    assert stored.evaluation.verdict == "require_approval"
    assert stored.evaluation.rule_version == 1


def test_a_refused_decision_leaves_no_row(database, db, acme) -> None:
    approval_uow = _factory(ApprovalsUnitOfWork, database, acme.id)
    opened = approvals.open_request(
        approval_uow,
        NewApprovalRequest(
            subject_kind="agent.action",
            subject_id="a-1",
            action_type="email.send",
            summary="send an e-mail",
            requested_by=acme.user("admin").id,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        ),
    ).request

    with pytest.raises(SelfApproval):
        approvals.decide(
            approval_uow, opened.id, decider=acme.user("admin").id, decision="approved",
            reason="mine",
        )  # fmt: skip

    assert _count(db, "approval_decisions") == 0
    assert approvals.get_approval(approval_uow, opened.id).status == "pending"


def test_the_sweeper_notifies_the_requester_and_the_escalation_role(database, db, acme) -> None:
    with db.owner() as conn:
        globex = create_tenant(conn)
    sweep_uow = _factory(ApprovalSweepUnitOfWork, database, None)
    assert approvals.sweep(sweep_uow) == []
    now = datetime.now(UTC)
    expiring = _open(database, acme, "m-expiring", requested_by=acme.user("member").id)
    escalating = _open(
        database,
        globex,
        "m-escalating",
        requested_by=globex.user("member").id,
        escalate_at=now + timedelta(minutes=10),
        escalation_role="admin",
    )
    with db.owner() as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            "UPDATE alquimista_platform.approval_requests SET expires_at = now() - interval '1s'"
            " WHERE id = %s",
            (expiring,),
        )
        conn.execute(
            "UPDATE alquimista_platform.approval_requests SET escalate_at = now() - interval '1s'"
            " WHERE id = %s",
            (escalating,),
        )

    changed = approvals.sweep(sweep_uow)

    assert {(c.request_id, c.change) for c in changed} == {
        (expiring, "expired"),
        (escalating, "escalated"),
    }
    assert ("approval.expired", acme.user("member").id) in _notified(db, expiring)
    escalated_to = {
        user for kind, user in _notified(db, escalating) if kind == "approval.escalated"
    }
    assert escalated_to == {globex.user("admin").id}


def _open(database: Database, tenant: TestTenant, subject_id: str, **fields: Any) -> uuid.UUID:
    opened = approvals.open_request(
        _factory(ApprovalsUnitOfWork, database, tenant.id),
        NewApprovalRequest(
            subject_kind="chat.message",
            subject_id=subject_id,
            action_type="chat.send",
            summary="held message",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            **fields,
        ),
    )
    return opened.request.id
