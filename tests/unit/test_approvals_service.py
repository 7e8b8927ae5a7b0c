from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from lambdas.approvals import service
from lambdas.approvals.errors import (
    ApprovalNotFound,
    ApprovalNotPending,
    NotADecider,
    NotTheRequester,
    ReasonRequired,
    SelfApproval,
)
from lambdas.approvals.models import NewApprovalRequest
from lambdas.shared.cursors import InvalidCursor
from tests.support.governance_fakes import (
    FakeApprovalStore,
    FakeApprovalsUnitOfWork,
    FakeSweepStore,
    FakeUnitOfWork,
)

MEMBER, ADMIN, ADMIN2 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


@pytest.fixture
def uow() -> FakeApprovalsUnitOfWork:
    return FakeApprovalsUnitOfWork(FakeApprovalStore(deciders={ADMIN, ADMIN2}))


def _ask(**changes: object) -> NewApprovalRequest:
    fields: dict[str, object] = {
        "subject_kind": "chat.message",
        "subject_id": str(uuid.uuid4()),
        "action_type": "chat.send",
        "summary": "a message with a CPF",
        "requested_by": MEMBER,
        "required_approvals": 2,
        "expires_at": datetime.now(UTC) + timedelta(hours=1),
    } | changes
    return NewApprovalRequest.model_validate(fields)


def test_opening_twice_for_one_subject_returns_the_pending_request(uow) -> None:
    ask = _ask()
    first = service.open_request(uow.factory(), ask)
    commits = uow.commits
    second = service.open_request(uow.factory(), ask)

    assert first.created
    assert not second.created
    assert second.request.id == first.request.id
    assert uow.commits == commits  # nothing new to commit
    assert uow.store.notified == [("approval.requested", first.request.id, "pending")]


def test_the_checked_story_two_admins_approve_and_the_member_cannot(uow) -> None:
    request = service.open_request(uow.factory(), _ask()).request
    commits = uow.commits

    with pytest.raises(SelfApproval):
        service.decide(uow.factory(), request.id, decider=MEMBER, decision="approved", reason="me")
    assert uow.commits == commits  # a refused decision commits nothing
    first = service.decide(
        uow.factory(), request.id, decider=ADMIN, decision="approved", reason="ok"
    )
    second = service.decide(
        uow.factory(), request.id, decider=ADMIN2, decision="approved", reason="ok too"
    )

    assert (first.status, second.status) == ("pending", "approved")
    assert uow.commits == commits + 2  # each decision commits with its call
    assert uow.store.notified[-1] == ("approval.decided", request.id, "approved")
    assert [n[0] for n in uow.store.notified].count("approval.decided") == 1
    stored = service.get_approval(uow.factory(), request.id)
    assert [d.reason for d in stored.decisions] == ["ok", "ok too"]


def test_a_member_who_did_not_ask_still_cannot_decide(uow) -> None:
    request = service.open_request(uow.factory(), _ask(requested_by=ADMIN)).request
    with pytest.raises(NotADecider):
        service.decide(uow.factory(), request.id, decider=MEMBER, decision="approved", reason="x")


def test_a_blank_reason_is_refused_before_the_store_is_touched(uow) -> None:
    entered = uow.entered
    with pytest.raises(ReasonRequired):
        service.decide(uow.factory(), uuid.uuid4(), decider=ADMIN, decision="rejected", reason=" ")
    assert uow.entered == entered


def test_a_refused_decision_commits_nothing(uow) -> None:
    request = service.open_request(uow.factory(), _ask(requested_by=ADMIN)).request
    commits = uow.commits
    with pytest.raises(SelfApproval):
        service.decide(uow.factory(), request.id, decider=ADMIN, decision="approved", reason="x")
    assert uow.commits == commits
    # and the attempt is audited apart, with its code
    assert uow.refusals == [(request.id, ADMIN, "self_approval")]


def test_an_unknown_request_or_a_blank_reason_is_not_audited_as_a_refusal(uow) -> None:
    with pytest.raises(ApprovalNotFound):
        service.decide(uow.factory(), uuid.uuid4(), decider=ADMIN, decision="approved", reason="x")
    with pytest.raises(ReasonRequired):
        service.decide(uow.factory(), uuid.uuid4(), decider=ADMIN, decision="approved", reason="")
    assert uow.refusals == []


def test_an_unknown_request_is_not_found(uow) -> None:
    with pytest.raises(ApprovalNotFound):
        service.get_approval(uow.factory(), uuid.uuid4())


def test_cancel_by_the_requester_only(uow) -> None:
    request = service.open_request(uow.factory(), _ask()).request
    with pytest.raises(NotTheRequester):
        service.cancel(uow.factory(), request.id, actor=ADMIN)
    assert service.cancel(uow.factory(), request.id, actor=MEMBER).status == "canceled"
    with pytest.raises(ApprovalNotPending):
        service.decide(uow.factory(), request.id, decider=ADMIN, decision="approved", reason="x")


def test_lists_page_with_a_cursor_and_filter_waiting_for_me(uow) -> None:
    opened = [service.open_request(uow.factory(), _ask()).request for _ in range(5)]
    service.decide(uow.factory(), opened[0].id, decider=ADMIN, decision="approved", reason="ok")

    first = service.list_approvals(uow.factory(), user_id=ADMIN, limit=3)
    assert first.next_cursor is not None
    rest = service.list_approvals(uow.factory(), user_id=ADMIN, limit=3, cursor=first.next_cursor)
    waiting = service.list_approvals(uow.factory(), user_id=ADMIN, waiting_for_me=True)
    mine = service.list_approvals(uow.factory(), user_id=MEMBER, mine=True)

    assert len(first.items) + len(rest.items) == 5
    assert rest.next_cursor is None
    assert {r.id for r in waiting.items} == {r.id for r in opened[1:]}
    assert len(mine.items) == 5


def test_a_forged_cursor_is_refused(uow) -> None:
    with pytest.raises(InvalidCursor):
        service.list_approvals(uow.factory(), user_id=ADMIN, cursor="not-a-cursor")


def test_the_sweeper_expires_and_escalates_what_is_due() -> None:
    tenant = uuid.uuid4()
    store = FakeApprovalStore(deciders={ADMIN})
    sweep_uow = FakeUnitOfWork(FakeSweepStore({tenant: store}))
    now = datetime.now(UTC)
    expiring, _ = store.find_or_create(_ask(expires_at=now + timedelta(seconds=30)))
    escalating, _ = store.find_or_create(
        _ask(escalate_at=now + timedelta(seconds=30), escalation_role="admin")
    )
    sweep_uow.store.now = lambda: now + timedelta(minutes=1)

    changed = service.sweep(sweep_uow.factory())

    assert {(c.request_id, c.change) for c in changed} == {
        (expiring.id, "expired"),
        (escalating.id, "escalated"),
    }
    assert sweep_uow.store.notified == changed
    assert sweep_uow.committed
