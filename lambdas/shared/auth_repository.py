"""The membership lookup behind ``auth.authorize``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from lambdas.shared.auth import MembershipGrant
from lambdas.shared.db import Database, OpeningQuery, UnitOfWork

_GRANT_SQL = """
SELECT u.id AS user_id,
       r.name AS role,
       coalesce(array_agg(p.code) FILTER (WHERE p.code IS NOT NULL), '{}') AS permissions
FROM alquimista_platform.users AS u
JOIN alquimista_platform.memberships AS m
  ON m.user_id = u.id AND m.tenant_id = %(tenant_id)s AND m.status = 'active'
JOIN alquimista_platform.tenants AS t
  ON t.id = m.tenant_id AND t.status IN ('active', 'trial')
JOIN alquimista_platform.roles AS r ON r.id = m.role_id
LEFT JOIN alquimista_platform.role_permissions AS rp ON rp.role_id = r.id
LEFT JOIN alquimista_platform.permissions AS p ON p.id = rp.permission_id
WHERE u.cognito_sub = %(sub)s AND u.status = 'active'
GROUP BY u.id, r.name
"""


def grant_query(sub: UUID, tenant_id: UUID) -> OpeningQuery:
    """The caller's active membership in ``tenant_id`` with its role's permissions."""
    return _GRANT_SQL, {"sub": sub, "tenant_id": tenant_id}


def grant_from_row(row: dict[str, Any] | None) -> MembershipGrant | None:
    if row is None:
        return None
    return MembershipGrant(
        user_id=row["user_id"], role=row["role"], permissions=frozenset(row["permissions"])
    )


class AuthUnitOfWork(UnitOfWork):
    """A transaction scoped to the requested tenant whose first round trip (BEGIN, the tenant
    scoping and the membership lookup, pipelined) already answers who the caller is there."""

    grant: MembershipGrant | None

    def __init__(self, database: Database, tenant_id: UUID, sub: UUID, **options: Any) -> None:
        super().__init__(database, tenant_id, **options)
        self._sub = sub

    def _opening(self) -> OpeningQuery:
        return grant_query(self._sub, self._tenant)

    @property
    def _tenant(self) -> UUID:
        if self.tenant_id is None:
            raise ValueError("a membership lookup needs a tenant")
        return self.tenant_id

    def _on_enter(self) -> None:
        self.grant = grant_from_row(self.opened.fetchone())
