"""The membership lookup behind ``auth.authorize``."""

from __future__ import annotations

from uuid import UUID

from lambdas.shared.auth import MembershipGrant
from lambdas.shared.db import Connection, UnitOfWork


class MembershipRepository:
    """Reads memberships; runs inside a transaction scoped to the requested tenant."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def grant_for(self, sub: UUID, tenant_id: UUID) -> MembershipGrant | None:
        row = self._conn.execute(
            """
            SELECT u.id AS user_id,
                   r.name AS role,
                   coalesce(
                       array_agg(p.code) FILTER (WHERE p.code IS NOT NULL), '{}'
                   ) AS permissions
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
            """,
            {"sub": sub, "tenant_id": tenant_id},
        ).fetchone()
        if row is None:
            return None
        return MembershipGrant(
            user_id=row["user_id"], role=row["role"], permissions=frozenset(row["permissions"])
        )


class AuthUnitOfWork(UnitOfWork):
    memberships: MembershipRepository

    def _on_enter(self) -> None:
        self.memberships = MembershipRepository(self.conn)
