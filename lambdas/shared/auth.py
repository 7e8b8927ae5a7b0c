"""Who is calling, for which tenant, and what their role allows.

API Gateway's JWT authorizer has already verified the token; its claims arrive in the event.
The user, their membership in the requested tenant and the role's permissions are looked up in
PostgreSQL on every request, inside a transaction scoped to that tenant (so RLS on memberships
applies to the lookup itself), and kept for the rest of that invocation only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

from lambdas.shared.constants import TENANT_CLAIM, TENANT_HEADER
from lambdas.shared.errors import Forbidden, Unauthorized, ValidationFailed


@dataclass(frozen=True)
class Identity:
    """What the verified token says about the caller."""

    sub: UUID
    email: str | None


@dataclass(frozen=True)
class MembershipGrant:
    """A user's active membership in one tenant, with the permissions of its role."""

    user_id: UUID
    role: str
    permissions: frozenset[str]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller acting in one tenant."""

    user_id: UUID
    sub: UUID
    email: str | None
    tenant_id: UUID
    role: str
    permissions: frozenset[str]


# (caller's sub, requested tenant) -> the caller's active membership there, or None; looked
# up in a transaction scoped to that tenant (``RequestScope.authorize``)
GrantLookup = Callable[[UUID, UUID], MembershipGrant | None]
# caller's sub -> whether the platform has a user row for the account (asked only on a refusal)
AccountLookup = Callable[[UUID], bool]

MEMBERSHIP_REQUIRED_MESSAGE: Final = (
    "your account is not a member of any tenant yet: ask a tenant admin to invite you"
)


_CANONICAL_UUID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII
)


def _uuid(value: Any) -> UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return UUID(value)
    except ValueError:
        return None


def claims_of(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JWT claims API Gateway put in a payload v2.0 event, if any."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims")
    return claims if isinstance(claims, Mapping) else None


def identity_from_claims(claims: Mapping[str, Any] | None) -> Identity:
    if not claims:
        raise Unauthorized("missing or invalid token")
    sub = _uuid(claims.get("sub"))
    if sub is None:
        raise Unauthorized("the token has no valid subject")
    email = claims.get("email")
    return Identity(sub=sub, email=email if isinstance(email, str) else None)


def requested_tenant(claims: Mapping[str, Any], headers: Mapping[str, str] | None) -> UUID:
    """The tenant the caller acts in: the ``X-Tenant-Id`` header, else the token's claim.

    The header takes only the hyphenated 8-4-4-4-12 form (hex digits in either case, as RFC 9562
    reads them); braces, ``urn:uuid:`` and dash-less spellings that ``uuid.UUID`` would also
    accept are refused, so one tenant has one spelling and everything keyed on it agrees.
    """
    header = (headers or {}).get(TENANT_HEADER)
    if header:
        if not _CANONICAL_UUID.fullmatch(header.strip()):
            raise ValidationFailed(
                "X-Tenant-Id must be a UUID in its hyphenated form "
                "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                details=[{"loc": ["header", TENANT_HEADER], "msg": "invalid UUID"}],
            )
        return UUID(header.strip())
    claim = claims.get(TENANT_CLAIM)
    if claim is None:
        raise NoTenantSelected("no tenant selected: send X-Tenant-Id or use a token with a tenant")
    tenant = _uuid(claim)
    if tenant is None:
        raise Unauthorized(f"the token's {TENANT_CLAIM} claim is not a valid UUID")
    return tenant


class NoTenantSelected(Forbidden):
    """Neither the X-Tenant-Id header nor the token names a tenant."""


class MembershipRequired(Forbidden):
    """A signed-in account the platform has no membership for (e.g. provisioned by Cognito on
    its first sign-in): a tenant admin must invite it (``POST /api/members/invitations``)."""

    code = "membership_required"


class PermissionDenied(Forbidden):
    """A member of the tenant whose role lacks the route's permission: the attempt is audited
    as ``denied`` in the tenant's chain (``RequestScope.record_denial``)."""

    def __init__(self, message: str, *, user_id: UUID, tenant_id: UUID, permission: str) -> None:
        super().__init__(message)
        self.user_id = user_id
        self.tenant_id = tenant_id
        self.permission = permission


def authorize(
    event: Mapping[str, Any],
    permission: str,
    lookup: GrantLookup,
    account_known: AccountLookup | None = None,
) -> Principal:
    """Resolve the caller of ``event`` and check that their role grants ``permission``.

    Raises Unauthorized (401) without a usable identity and Forbidden (403) when the caller is
    not an active member of the requested tenant or their role lacks the permission; an account
    the platform has never seen (``account_known``) is MembershipRequired (403), so a user
    provisioned on their first sign-in learns why they are refused.
    """
    claims = claims_of(event) or {}
    identity = identity_from_claims(claims)
    try:
        tenant_id = requested_tenant(claims, event.get("headers"))
    except NoTenantSelected:
        if account_known is not None and not account_known(identity.sub):
            raise MembershipRequired(MEMBERSHIP_REQUIRED_MESSAGE) from None
        raise
    grant = lookup(identity.sub, tenant_id)
    if grant is None:
        if account_known is not None and not account_known(identity.sub):
            raise MembershipRequired(MEMBERSHIP_REQUIRED_MESSAGE)
        raise Forbidden("you are not an active member of this tenant")
    if permission not in grant.permissions:
        raise PermissionDenied(
            f"your role ({grant.role}) lacks the permission {permission}",
            user_id=grant.user_id,
            tenant_id=tenant_id,
            permission=permission,
        )
    return Principal(
        user_id=grant.user_id,
        sub=identity.sub,
        email=identity.email,
        tenant_id=tenant_id,
        role=grant.role,
        permissions=grant.permissions,
    )
