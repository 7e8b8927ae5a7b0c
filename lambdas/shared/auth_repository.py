"""The membership lookup behind ``auth.authorize``: a read ``RequestScope.authorize`` sends
in the same round trip as BEGIN and the tenant scoping."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from lambdas.shared.auth import MembershipGrant
from lambdas.shared.db import OpeningQuery

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


_ACCOUNT_SQL = """
SELECT EXISTS (SELECT 1 FROM alquimista_platform.users WHERE cognito_sub = %(sub)s) AS known
"""


def account_query(sub: UUID) -> OpeningQuery:
    """Whether a user row exists for the caller's subject (users are not tenant-owned)."""
    return _ACCOUNT_SQL, {"sub": sub}


def account_from_row(row: dict[str, Any] | None) -> bool:
    return bool(row and row["known"])
