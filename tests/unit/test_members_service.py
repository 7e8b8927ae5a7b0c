"""The members use cases over in-memory fakes of their ports (no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lambdas.members import service
from lambdas.members.models import (
    ChangeRoleRequest,
    InviteMemberRequest,
    MemberResponse,
    Role,
)
from lambdas.shared.cursors import InvalidCursor, encode_cursor
from lambdas.shared.events import validated_payload

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakeDirectory:
    accounts: dict[str, uuid.UUID] = field(default_factory=dict)
    invited: list[str] = field(default_factory=list)

    def invite(self, email: str, *, tenant_id: uuid.UUID) -> service.Account:
        self.invited.append(email)
        if email in self.accounts:
            return service.Account(self.accounts[email], created=False)
        self.accounts[email] = uuid.uuid4()
        return service.Account(self.accounts[email], created=True)


@dataclass
class FakeUsers:
    by_email: dict[str, uuid.UUID] = field(default_factory=dict)

    def find_by_email(self, email: str) -> uuid.UUID | None:
        return self.by_email.get(email.lower())

    def ensure(self, *, sub: uuid.UUID, email: str, full_name: str | None) -> uuid.UUID:
        return self.by_email.setdefault(email, uuid.uuid4())


@dataclass
class FakeMembers:
    rows: dict[uuid.UUID, MemberResponse] = field(default_factory=dict)
    # the pending approval requests each user asked for
    requests: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)

    def page(self, *, role: Role | None, after: Any, limit: int) -> list[MemberResponse]:
        ordered = sorted(self.rows.values(), key=lambda m: (m.created_at, m.user_id))
        return [
            m
            for m in ordered
            if (role is None or m.role == role)
            and (after is None or (m.created_at, m.user_id) > after)
        ][:limit]

    def get(self, user_id: uuid.UUID, *, lock: bool = False) -> MemberResponse | None:
        return self.rows.get(user_id)

    def add(self, user_id: uuid.UUID, *, role: Role, invited_by: uuid.UUID) -> MemberResponse:
        if user_id in self.rows:
            raise service.MemberAlreadyExists("duplicate")
        self.rows[user_id] = _member(user_id, role, len(self.rows))
        return self.rows[user_id]

    def set_role(self, user_id: uuid.UUID, role: Role) -> MemberResponse:
        self.rows[user_id] = self.rows[user_id].model_copy(update={"role": role})
        return self.rows[user_id]

    def remove(self, user_id: uuid.UUID) -> service.Removal | None:
        member = self.rows.pop(user_id, None)
        if member is None:
            return None
        return service.Removal(member.role, self.requests.pop(user_id, []), [])


def _member(user_id: uuid.UUID, role: Role, n: int) -> MemberResponse:
    return MemberResponse(
        user_id=user_id,
        email=f"u{n}@example.com",
        full_name=None,
        role=role,
        status="active",
        joined_at=T0,
        created_at=T0 + timedelta(seconds=n),
    )


@dataclass
class FakeUow:
    users: FakeUsers = field(default_factory=FakeUsers)
    members: FakeMembers = field(default_factory=FakeMembers)
    recorded: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    commits: int = 0

    def record(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> None:
        # the catalog check the real unit of work makes
        self.recorded.append(
            (event_type, validated_payload(event_type, version, aggregate_type, payload))
        )

    def commit(self) -> None:
        self.commits += 1

    def factory(self) -> Any:
        @contextmanager
        def enter() -> Iterator[FakeUow]:
            yield self

        return enter


TENANT = uuid.uuid4()
ACTOR = uuid.uuid4()


def test_inviting_a_new_email_creates_the_account_and_records_ids_only() -> None:
    uow, directory = FakeUow(), FakeDirectory()

    invitation = service.invite_member(
        uow.factory(),
        directory,
        InviteMemberRequest(email="Ana@Example.com", role="member"),
        tenant_id=TENANT,
        actor_id=ACTOR,
    )

    assert invitation.account_created is True
    assert directory.invited == ["ana@example.com"]
    assert uow.commits == 1
    [(event, payload)] = uow.recorded
    assert event == "membership.invited"
    assert "ana@example.com" not in str(payload).lower()


def test_inviting_a_known_user_asks_no_identity_provider() -> None:
    uow, directory = FakeUow(), FakeDirectory()
    uow.users.by_email["bia@example.com"] = uuid.uuid4()

    invitation = service.invite_member(
        uow.factory(),
        directory,
        InviteMemberRequest(email="BIA@example.com", role="viewer"),
        tenant_id=TENANT,
        actor_id=ACTOR,
    )

    assert invitation.account_created is False
    assert directory.invited == []


def test_inviting_a_current_member_is_refused_and_records_nothing() -> None:
    uow, directory = FakeUow(), FakeDirectory()
    user_id = uow.users.by_email.setdefault("cai@example.com", uuid.uuid4())
    uow.members.rows[user_id] = _member(user_id, "member", 0)

    with pytest.raises(service.MemberAlreadyExists):
        service.invite_member(
            uow.factory(),
            directory,
            InviteMemberRequest(email="cai@example.com", role="admin"),
            tenant_id=TENANT,
            actor_id=ACTOR,
        )
    assert (uow.recorded, uow.commits, directory.invited) == ([], 0, [])


def test_changing_to_the_same_role_writes_nothing() -> None:
    uow = FakeUow()
    user_id = uuid.uuid4()
    uow.members.rows[user_id] = _member(user_id, "viewer", 0)

    same = service.change_role(
        uow.factory(), user_id, ChangeRoleRequest(role="viewer"), actor_id=ACTOR
    )
    changed = service.change_role(
        uow.factory(), user_id, ChangeRoleRequest(role="member"), actor_id=ACTOR
    )

    assert (same.role, changed.role) == ("viewer", "member")
    assert [event for event, _ in uow.recorded] == ["membership.role_changed"]
    assert uow.recorded[0][1]["from_role"] == "viewer"


def test_an_unknown_member_is_not_found() -> None:
    uow = FakeUow()
    with pytest.raises(service.MemberNotFound):
        service.change_role(
            uow.factory(), uuid.uuid4(), ChangeRoleRequest(role="admin"), actor_id=ACTOR
        )
    with pytest.raises(service.MemberNotFound):
        service.remove_member(uow.factory(), uuid.uuid4(), actor_id=ACTOR)
    assert uow.recorded == []


def test_pages_follow_the_cursor_and_a_forged_cursor_is_refused() -> None:
    uow = FakeUow()
    for n in range(5):
        user_id = uuid.uuid4()
        uow.members.rows[user_id] = _member(user_id, "viewer", n)

    first = service.list_members(uow.factory(), limit=3)
    second = service.list_members(uow.factory(), cursor=first.next_cursor, limit=3)

    assert len(first.items) == 3
    assert len(second.items) == 2
    assert second.next_cursor is None
    for forged in ("bm9wZQ", encode_cursor("2026-01-01T00:00:00|x")):
        with pytest.raises(InvalidCursor):
            service.list_members(uow.factory(), cursor=forged)


def test_removing_a_member_records_each_canceled_request_as_the_cancel_route_does() -> None:
    uow = FakeUow()
    leaving = uuid.uuid4()
    uow.members.rows[leaving] = _member(leaving, "member", 0)
    canceled = [uuid.uuid4(), uuid.uuid4()]
    uow.members.requests[leaving] = list(canceled)

    service.remove_member(uow.factory(), leaving, actor_id=ACTOR)

    assert [event for event, _ in uow.recorded] == [
        "approval.canceled",
        "approval.canceled",
        "membership.revoked",
    ]
    assert [payload for _, payload in uow.recorded[:2]] == [
        validated_payload(
            "approval.canceled", 1, "approval", {"approval_id": request, "canceled_by": leaving}
        )
        for request in canceled
    ]
