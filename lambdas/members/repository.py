"""The members' SQL (memberships and the users they point at) and the unit of work."""

from __future__ import annotations

from datetime import datetime
from typing import Any, LiteralString
from uuid import UUID

from lambdas.members.models import MemberResponse, Role
from lambdas.members.service import Removal
from lambdas.shared.db import Connection, UnitOfWork

_MEMBER_SELECT: LiteralString = """
    SELECT m.user_id, u.email, u.full_name, r.name AS role, m.status, m.joined_at, m.created_at
    FROM alquimista_platform.memberships AS m
    JOIN alquimista_platform.users AS u ON u.id = m.user_id
    JOIN alquimista_platform.roles AS r ON r.id = m.role_id
"""


def _member(row: dict[str, Any]) -> MemberResponse:
    return MemberResponse(
        user_id=row["user_id"],
        email=row["email"],
        full_name=row["full_name"],
        role=row["role"],
        status=row["status"],
        joined_at=row["joined_at"],
        created_at=row["created_at"],
    )


def _required(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        raise LookupError("the statement returned no row")
    return row


class UserRepository:
    """Accounts (global rows, no tenant: a user may belong to several tenants)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def find_by_email(self, email: str) -> UUID | None:
        row = self._conn.execute(
            """
            SELECT id FROM alquimista_platform.users WHERE lower(email) = lower(%s)
            """,
            (email,),
        ).fetchone()
        return row["id"] if row else None

    def ensure(self, *, sub: UUID, email: str, full_name: str | None) -> UUID:
        """The user row of the identity provider's ``sub``, created if missing (an account
        the provider already had, e.g. provisioned on a first federated sign-in)."""
        row = self._conn.execute(
            """
            INSERT INTO alquimista_platform.users AS u (cognito_sub, email, full_name)
            VALUES (%(sub)s, %(email)s, %(full_name)s)
            ON CONFLICT (cognito_sub) DO UPDATE
            SET full_name = coalesce(u.full_name, excluded.full_name)
            RETURNING id
            """,
            {"sub": sub, "email": email, "full_name": full_name},
        ).fetchone()
        user_id: UUID = _required(row)["id"]
        return user_id


class MemberRepository:
    """One tenant's memberships (RLS scopes every statement; the filters say so as well)."""

    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    def page(
        self, *, role: Role | None, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[MemberResponse]:
        """Up to ``limit`` members by (created_at, user_id), after ``after`` (keyset)."""
        rows = self._conn.execute(
            _MEMBER_SELECT
            + """
            WHERE m.tenant_id = %(tenant)s
              AND (%(role)s::text IS NULL OR r.name = %(role)s)
              AND (%(after_at)s::timestamptz IS NULL
                   OR (m.created_at, m.user_id) > (%(after_at)s, %(after_id)s::uuid))
            ORDER BY m.created_at, m.user_id
            LIMIT %(limit)s
            """,
            {
                "tenant": self._tenant_id,
                "role": role,
                "after_at": after[0] if after else None,
                "after_id": after[1] if after else None,
                "limit": limit,
            },
        ).fetchall()
        return [_member(row) for row in rows]

    def get(self, user_id: UUID, *, lock: bool = False) -> MemberResponse | None:
        query = _MEMBER_SELECT + " WHERE m.tenant_id = %s AND m.user_id = %s"
        if lock:
            query += " FOR UPDATE OF m"
        row = self._conn.execute(query, (self._tenant_id, user_id)).fetchone()
        return _member(row) if row else None

    def add(self, user_id: UUID, *, role: Role, invited_by: UUID) -> MemberResponse:
        """A new active membership; a second one for the same user violates
        memberships_tenant_id_user_id_key (MemberAlreadyExists)."""
        self._conn.execute(
            """
            INSERT INTO alquimista_platform.memberships
                (tenant_id, user_id, role_id, status, invited_by, joined_at)
            SELECT %(tenant)s, %(user)s, r.id, 'active', %(by)s, now()
            FROM alquimista_platform.roles AS r WHERE r.name = %(role)s
            """,
            {"tenant": self._tenant_id, "user": user_id, "role": role, "by": invited_by},
        )
        return self._required_member(user_id)

    def set_role(self, user_id: UUID, role: Role) -> MemberResponse:
        """Change the role (memberships_keep_an_admin refuses to demote the last admin)."""
        self._conn.execute(
            """
            UPDATE alquimista_platform.memberships
            SET role_id = (SELECT r.id FROM alquimista_platform.roles AS r WHERE r.name = %(role)s)
            WHERE tenant_id = %(tenant)s AND user_id = %(user)s
            """,
            {"tenant": self._tenant_id, "user": user_id, "role": role},
        )
        return self._required_member(user_id)

    def remove(self, user_id: UUID) -> Removal | None:
        """Delete the membership, cancel the pending approval requests the user asked for and
        withdraw their approvals on pending requests; None if there is no such member."""
        params = {"tenant": self._tenant_id, "user": user_id}
        removed = self._conn.execute(
            """
            DELETE FROM alquimista_platform.memberships AS m
            USING alquimista_platform.roles AS r
            WHERE m.tenant_id = %(tenant)s AND m.user_id = %(user)s AND r.id = m.role_id
            RETURNING r.name AS role
            """,
            params,
        ).fetchone()
        if removed is None:
            return None
        # The approval request guard (026) lets only the requester cancel: the requester is
        # who is leaving, and the metadata says why.
        canceled = self._conn.execute(
            """
            UPDATE alquimista_platform.approval_requests
            SET status = 'canceled', canceled_by = requested_by,
                metadata = metadata || jsonb_build_object('canceled_because', 'requester_removed')
            WHERE tenant_id = %(tenant)s AND requested_by = %(user)s AND status = 'pending'
            RETURNING id
            """,
            params,
        ).fetchall()
        withdrawn = self._conn.execute(
            """
            DELETE FROM alquimista_platform.approval_decisions AS d
            USING alquimista_platform.approval_requests AS r
            WHERE d.tenant_id = %(tenant)s AND d.decided_by = %(user)s
              AND r.tenant_id = d.tenant_id AND r.id = d.approval_request_id
              AND r.status = 'pending'
            RETURNING d.id
            """,
            params,
        ).fetchall()
        return Removal(
            role=removed["role"],
            canceled_requests=sorted(row["id"] for row in canceled),
            withdrawn_decisions=sorted(row["id"] for row in withdrawn),
        )

    def _required_member(self, user_id: UUID) -> MemberResponse:
        member = self.get(user_id)
        if member is None:
            raise LookupError("the membership is missing after its write")
        return member


class MembersUnitOfWork(UnitOfWork):
    users: UserRepository
    members: MemberRepository

    def _on_enter(self) -> None:
        if self.tenant_id is None:
            raise RuntimeError("the members unit of work needs a tenant")
        self.users = UserRepository(self.conn)
        self.members = MemberRepository(self.conn, self.tenant_id)
