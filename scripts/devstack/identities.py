"""The dev tenants and users: one user per role in each tenant, with stable ids.

Ids are derived (uuid5) so that the seed, ``scripts/dev_token.py`` and the tests agree without
sharing literals.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final, Literal

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
