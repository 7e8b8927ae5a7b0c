"""A tenant's members: list them, invite one by e-mail with a role, change a role, remove one.

The identity provider (Cognito) holds accounts; PostgreSQL holds who belongs to which tenant with
which role. Every change is recorded (audit row and outbox event) with ids only: the e-mail
address stays in the users table, where erasure can reach it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from lambdas.members.models import (
    ChangeRoleRequest,
    InvitationResponse,
    InviteMemberRequest,
    MemberPage,
    MemberRemovedResponse,
    MemberResponse,
    Role,
)
from lambdas.shared import cursors
from lambdas.shared.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from lambdas.shared.scope import ChangeRecorder


class MemberNotFound(NotFound):
    code = "member_not_found"


class MemberAlreadyExists(Conflict):
    """The e-mail already belongs to a member of the tenant."""

    code = "member_already_exists"
    constraints = ("memberships_tenant_id_user_id_key",)
    constraint_message = "this user is already a member of the tenant"


class LastAdmin(Conflict):
    """The change would leave the tenant without an active admin."""

    code = "last_admin"
    constraints = ("memberships_last_admin",)
    constraint_message = "the tenant must keep at least one active admin"


class AccountConflict(Conflict):
    """Another account already uses this e-mail address."""

    code = "account_conflict"
    constraints = ("users_email_key", "users_cognito_sub_key")
    constraint_message = "another account already uses this e-mail address"


class EmailRejected(ValidationFailed):
    """The identity provider refused the e-mail address."""

    code = "invalid_email"


class IdentityProviderUnavailable(ServiceUnavailable):
    """The identity provider did not answer; nothing was changed."""

    code = "identity_provider_unavailable"


@dataclass(frozen=True)
class Account:
    """An account of the identity provider: its subject, and whether this call created it."""

    sub: UUID
    created: bool


@dataclass(frozen=True)
class Removal:
    """What removing a membership took with it."""

    role: Role
    canceled_requests: list[UUID]
    withdrawn_decisions: list[UUID]


class IdentityDirectory(Protocol):
    """The identity provider's user directory (Cognito user pool)."""

    def invite(self, email: str, *, tenant_id: UUID) -> Account:
        """The account of ``email``: created and sent a sign-in invitation (with
        ``tenant_id`` as its default tenant) if it does not exist, else the existing one.
        Raises EmailRejected or IdentityProviderUnavailable."""
        ...


class UserStore(Protocol):
    def find_by_email(self, email: str) -> UUID | None: ...

    def ensure(self, *, sub: UUID, email: str, full_name: str | None) -> UUID: ...


class MemberStore(Protocol):
    def page(
        self, *, role: Role | None, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[MemberResponse]: ...

    def get(self, user_id: UUID, *, lock: bool = False) -> MemberResponse | None: ...

    def add(self, user_id: UUID, *, role: Role, invited_by: UUID) -> MemberResponse: ...

    def set_role(self, user_id: UUID, role: Role) -> MemberResponse: ...

    def remove(self, user_id: UUID) -> Removal | None: ...


class MembersUow(ChangeRecorder, Protocol):
    @property
    def users(self) -> UserStore: ...

    @property
    def members(self) -> MemberStore: ...

    def commit(self) -> None: ...


MembersUowFactory = Callable[[], AbstractContextManager[MembersUow]]


def encode_cursor(member: MemberResponse) -> str:
    return cursors.encode_cursor(f"{member.created_at.isoformat()}|{member.user_id}")


def _position(text: str) -> tuple[datetime, UUID]:
    created, _, user_id = text.partition("|")
    at = datetime.fromisoformat(created)
    if at.tzinfo is None:
        raise ValueError("a cursor's time has a time zone")
    return at, UUID(user_id)


def _is_position(text: str) -> bool:
    try:
        _position(text)
    except ValueError:
        return False
    return True


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    return _position(cursors.decode_cursor(cursor, valid=_is_position))


def normalised_email(email: str) -> str:
    """E-mail addresses are compared case-insensitively (users_email_key, Cognito's sign-in)."""
    return email.strip().lower()


def list_members(
    uow_factory: MembersUowFactory,
    *,
    role: Role | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> MemberPage:
    """A page of the tenant's members with their roles, oldest membership first."""
    after = decode_cursor(cursor) if cursor else None
    with uow_factory() as uow:
        members = uow.members.page(role=role, after=after, limit=limit + 1)
    has_more = len(members) > limit
    items = members[:limit]
    return MemberPage(items=items, next_cursor=encode_cursor(items[-1]) if has_more else None)


def get_member(uow_factory: MembersUowFactory, user_id: UUID) -> MemberResponse:
    with uow_factory() as uow:
        member = uow.members.get(user_id)
    if member is None:
        raise MemberNotFound("member not found")
    return member


def invite_member(
    uow_factory: MembersUowFactory,
    directory: IdentityDirectory,
    request: InviteMemberRequest,
    *,
    tenant_id: UUID,
    actor_id: UUID,
) -> InvitationResponse:
    """Make the owner of ``request.email`` a member of the tenant with ``request.role``.

    An e-mail without an account gets one in the identity provider, which sends the sign-in
    invitation; an e-mail that already has an account (a member of another tenant) is added as
    it is. Inviting a current member is MemberAlreadyExists (the unique key decides a race).
    """
    email = normalised_email(request.email)
    with uow_factory() as uow:
        user_id = uow.users.find_by_email(email)
        created = False
        if user_id is None:
            account = directory.invite(email, tenant_id=tenant_id)
            user_id = uow.users.ensure(sub=account.sub, email=email, full_name=request.full_name)
            created = account.created
        elif uow.members.get(user_id) is not None:
            raise MemberAlreadyExists("this user is already a member of the tenant")
        member = uow.members.add(user_id, role=request.role, invited_by=actor_id)
        uow.record(
            "membership.invited",
            aggregate_type="membership",
            aggregate_id=str(user_id),
            payload={
                "user_id": user_id,
                "role": request.role,
                "invited_by": actor_id,
                "account_created": created,
            },
        )
        uow.commit()
    return InvitationResponse(member=member, account_created=created)


def change_role(
    uow_factory: MembersUowFactory, user_id: UUID, request: ChangeRoleRequest, *, actor_id: UUID
) -> MemberResponse:
    """Give a member another role. Idempotent; demoting the tenant's last active admin is
    LastAdmin (enforced by the database for every writer, concurrent ones included)."""
    with uow_factory() as uow:
        current = uow.members.get(user_id, lock=True)
        if current is None:
            raise MemberNotFound("member not found")
        if current.role == request.role:
            return current
        updated = uow.members.set_role(user_id, request.role)
        uow.record(
            "membership.role_changed",
            aggregate_type="membership",
            aggregate_id=str(user_id),
            payload={
                "user_id": user_id,
                "from_role": current.role,
                "to_role": request.role,
                "changed_by": actor_id,
            },
        )
        uow.commit()
        return updated


def remove_member(
    uow_factory: MembersUowFactory, user_id: UUID, *, actor_id: UUID
) -> MemberRemovedResponse:
    """Remove a member from the tenant: the approval requests they asked for that are still
    pending are canceled (each recorded as ``approval.canceled`` by its requester, as the cancel
    route records it), and their approvals on still-pending requests are withdrawn (they no
    longer count towards a quorum). Removing the last active admin is LastAdmin. The account
    stays in the identity provider (it may belong to other tenants)."""
    with uow_factory() as uow:
        removal = uow.members.remove(user_id)
        if removal is None:
            raise MemberNotFound("member not found")
        for request_id in removal.canceled_requests:
            uow.record(
                "approval.canceled",
                aggregate_type="approval",
                aggregate_id=str(request_id),
                payload={"approval_id": request_id, "canceled_by": user_id},
            )
        uow.record(
            "membership.revoked",
            aggregate_type="membership",
            aggregate_id=str(user_id),
            payload={
                "user_id": user_id,
                "role": removal.role,
                "removed_by": actor_id,
                "canceled_approval_requests": removal.canceled_requests,
                "withdrawn_decisions": removal.withdrawn_decisions,
            },
        )
        uow.commit()
    return MemberRemovedResponse(
        user_id=user_id,
        role=removal.role,
        canceled_approval_requests=removal.canceled_requests,
        withdrawn_decisions=removal.withdrawn_decisions,
    )
