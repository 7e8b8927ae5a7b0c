from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

# The roles of alquimista_platform.roles (002), lowest to highest.
Role = Literal["viewer", "member", "admin"]
MembershipStatus = Literal["active", "invited", "suspended"]

# What Cognito and the users table accept: one @, no spaces, a dot in the domain (RFC 5321's
# 254-character limit). Deliverability is Cognito's to prove.
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InviteMemberRequest(_Model):
    email: str = Field(pattern=EMAIL_PATTERN, max_length=254, examples=["ana@acme.com.br"])
    role: Role
    full_name: str | None = Field(default=None, min_length=1, max_length=200)


class ChangeRoleRequest(_Model):
    role: Role


class MemberResponse(_Model):
    user_id: UUID
    email: str
    full_name: str | None
    role: Role
    status: MembershipStatus
    joined_at: datetime | None
    created_at: datetime


class MemberPage(_Model):
    items: list[MemberResponse]
    next_cursor: str | None


class InvitationResponse(_Model):
    member: MemberResponse
    # False when the e-mail already had an account (another tenant's member): no new sign-in
    # invitation was sent, the membership was added to the existing account.
    account_created: bool


class MemberRemovedResponse(_Model):
    user_id: UUID
    role: Role
    # Pending approval requests the member had asked for, canceled with the membership.
    canceled_approval_requests: list[UUID]
    # The member's approvals on still-pending requests, withdrawn: they no longer count
    # towards any quorum.
    withdrawn_decisions: list[UUID]
