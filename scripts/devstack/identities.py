"""The dev tenants and users: one user per role in each tenant, with stable ids; and any
other account of the local platform (e.g. one invited through ``POST /api/members/invitations``),
found by its e-mail.

Ids are derived (uuid5) so that the seed, ``scripts/dev_token.py`` and the tests agree without
sharing literals.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import psycopg
from psycopg.rows import dict_row

_NAMESPACE: Final = uuid.UUID("6f1c1d1e-6a0b-4c55-9a57-3d1a2b7e9c10")
Role = Literal["admin", "member", "viewer"]
ROLES: Final[tuple[Role, ...]] = ("admin", "member", "viewer")


@dataclass(frozen=True)
class DevTenant:
    slug: str
    name: str

    @property
    def id(self) -> uuid.UUID:
        return uuid.uuid5(_NAMESPACE, f"tenant:{self.slug}")


@dataclass(frozen=True)
class DevUser:
    tenant: DevTenant
    role: Role

    @property
    def sub(self) -> uuid.UUID:
        """The identity provider's subject (Cognito ``sub``)."""
        return uuid.uuid5(_NAMESPACE, f"user:{self.tenant.slug}:{self.role}")

    @property
    def email(self) -> str:
        return f"{self.role}@{self.tenant.slug}.example.com"

    @property
    def tenant_id(self) -> uuid.UUID:
        """The tenant of the account's ``custom:tenant_id`` attribute."""
        return self.tenant.id


TENANTS: Final = (
    DevTenant("acme", "Acme Indústria Ltda"),
    DevTenant("globex", "Globex Serviços S.A."),
)
USERS: Final = tuple(DevUser(tenant, role) for tenant in TENANTS for role in ROLES)


def find_user(tenant_slug: str, role: str) -> DevUser:
    for user in USERS:
        if user.tenant.slug == tenant_slug and user.role == role:
            return user
    known = ", ".join(sorted({u.tenant.slug for u in USERS}))
    raise LookupError(
        f"no dev user with role {role!r} in tenant {tenant_slug!r} (tenants: {known})"
    )


class TokenSubject(Protocol):
    """What a dev ID token says about its account (Cognito's ``sub``, ``email`` and the
    ``custom:tenant_id`` attribute, absent when the account has no tenant)."""

    @property
    def sub(self) -> uuid.UUID: ...

    @property
    def email(self) -> str: ...

    @property
    def tenant_id(self) -> uuid.UUID | None: ...


@dataclass(frozen=True)
class LocalAccount:
    """An account of the local platform, as its user row and memberships describe it."""

    sub: uuid.UUID
    email: str
    tenant_id: uuid.UUID | None


class UnknownAccount(LookupError):
    """No account of the local platform has this e-mail."""


# The user row by e-mail (stored normalised: lower case), with the tenant its Cognito account
# carries in custom:tenant_id: the tenant that invited it first, i.e. its earliest membership
# that is still active (none: the token has no tenant claim, like a first-sign-in account).
_ACCOUNT_SQL = """
SELECT u.cognito_sub AS sub, u.email,
       (SELECT m.tenant_id FROM alquimista_platform.memberships AS m
        WHERE m.user_id = u.id AND m.status = 'active'
        ORDER BY m.created_at, m.tenant_id LIMIT 1) AS tenant_id
FROM alquimista_platform.users AS u
WHERE lower(u.email) = lower(%s)
"""


def find_account(database_url: str, email: str) -> LocalAccount:
    """The local account of ``email`` (case-insensitive), or ``UnknownAccount`` naming it.

    Reads the platform's users as the database owner (``users`` is not tenant-owned; the
    memberships it reads span tenants), so it is for the `make dev` database only."""
    wanted = email.strip()
    with psycopg.connect(database_url, row_factory=dict_row, connect_timeout=5) as conn:
        row: dict[str, Any] | None = conn.execute(_ACCOUNT_SQL, (wanted,)).fetchone()
    if row is None:
        raise UnknownAccount(
            f"no account with the e-mail {wanted!r} in the local platform: seeded users are "
            "<role>@<tenant>.example.com; invite others with POST /api/members/invitations"
        )
    return LocalAccount(sub=row["sub"], email=row["email"], tenant_id=row["tenant_id"])
