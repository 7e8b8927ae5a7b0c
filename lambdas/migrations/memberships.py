"""Operator action: put a user in a tenant with a role (creating the tenant and the user row
when they do not exist yet). Used by ``scripts/create_user.py`` through the migration Lambda,
which holds the owner's credentials inside the VPC, and by the dev seed.

``add_membership`` is the one writer of a membership row: the operator action, the dev seed,
the test factories and the benchmarks' fixtures all go through it."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import psycopg
from psycopg import errors
from pydantic import BaseModel, ConfigDict, Field

from lambdas.shared.db import set_tenant

Role = Literal["viewer", "member", "admin"]
MembershipStatus = Literal["active", "invited", "suspended"]


class GrantMembership(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    tenant_name: str | None = Field(default=None, min_length=1, max_length=200)
    tenant_id: uuid.UUID | None = None
    cognito_sub: uuid.UUID
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    full_name: str | None = Field(default=None, max_length=200)
    role: Role
    user_id: uuid.UUID | None = None


class MembershipGranted(BaseModel):
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    role: Role
    tenant_created: bool


class UnknownTenant(LookupError):
    """The tenant does not exist and no name was given to create it."""


class UnknownRole(LookupError):
    """No role of that name exists (``alquimista_platform.roles``)."""


_FIND_TENANT = """
SELECT id FROM alquimista_platform.tenants WHERE slug = %s
"""

_UPSERT_TENANT = """
INSERT INTO alquimista_platform.tenants AS t (id, slug, name)
VALUES (coalesce(%s, gen_random_uuid()), %s, %s)
ON CONFLICT (slug) DO UPDATE SET name = excluded.name
WHERE t.name IS DISTINCT FROM excluded.name
RETURNING id
"""

_UPSERT_USER = """
INSERT INTO alquimista_platform.users AS u (id, cognito_sub, email, full_name)
VALUES (coalesce(%s, gen_random_uuid()), %s, %s, %s)
ON CONFLICT (cognito_sub) DO UPDATE
SET email = excluded.email, full_name = coalesce(excluded.full_name, u.full_name)
WHERE (u.email, u.full_name) IS DISTINCT FROM
      (excluded.email, coalesce(excluded.full_name, u.full_name))
RETURNING id
"""

_FIND_USER = """
SELECT id FROM alquimista_platform.users WHERE cognito_sub = %s
"""

# An unknown role leaves role_id NULL, which the NOT NULL constraint refuses: never a silent
# no-op. joined_at is when the membership first became active.
_UPSERT_MEMBERSHIP = """
INSERT INTO alquimista_platform.memberships AS m (tenant_id, user_id, role_id, status, joined_at)
VALUES (
    %(tenant_id)s, %(user_id)s,
    (SELECT r.id FROM alquimista_platform.roles AS r WHERE r.name = %(role)s),
    %(status)s, CASE WHEN %(status)s = 'active' THEN now() END
)
ON CONFLICT (tenant_id, user_id) DO UPDATE
SET role_id = excluded.role_id, status = excluded.status,
    joined_at = coalesce(m.joined_at, excluded.joined_at)
WHERE (m.role_id, m.status) IS DISTINCT FROM (excluded.role_id, excluded.status)
"""


def grant_membership(conn: psycopg.Connection[Any], request: GrantMembership) -> MembershipGranted:
    """Idempotently make ``request.cognito_sub`` a ``role`` of the tenant ``tenant_slug``.

    Runs in the caller's transaction; a second identical call changes nothing.
    """
    existing = conn.execute(_FIND_TENANT, (request.tenant_slug,)).fetchone()
    if existing is None and request.tenant_name is None:
        raise UnknownTenant(
            f"tenant {request.tenant_slug!r} does not exist; give a tenant name to create it"
        )
    tenant_id = existing[0] if existing else None
    if request.tenant_name is not None:
        row = conn.execute(
            _UPSERT_TENANT, (request.tenant_id, request.tenant_slug, request.tenant_name)
        ).fetchone()
        tenant_id = row[0] if row else tenant_id
    user = (
        conn.execute(
            _UPSERT_USER, (request.user_id, request.cognito_sub, request.email, request.full_name)
        ).fetchone()
        or conn.execute(_FIND_USER, (request.cognito_sub,)).fetchone()
    )
    if tenant_id is None or user is None:
        raise RuntimeError("tenant or user row missing after upsert")
    add_membership(conn, tenant_id=tenant_id, user_id=user[0], role=request.role)
    _record_grant(conn, tenant_id=tenant_id, user_id=user[0], role=request.role)
    return MembershipGranted(
        tenant_id=tenant_id, user_id=user[0], role=request.role, tenant_created=existing is None
    )


def add_membership(
    conn: psycopg.Connection[Any],
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    status: MembershipStatus = "active",
) -> None:
    """Make ``user_id`` a ``role`` of ``tenant_id`` with ``status``, or change the role and
    status of the membership it has; idempotent. Runs in the caller's transaction, which it
    scopes to ``tenant_id`` (memberships are under forced RLS: even the owner must)."""
    set_tenant(conn, tenant_id)
    params = {"tenant_id": tenant_id, "user_id": user_id, "role": role, "status": status}
    try:
        conn.execute(_UPSERT_MEMBERSHIP, params)
    except errors.NotNullViolation as exc:
        if exc.diag.column_name != "role_id":
            raise
        raise UnknownRole(f"no role named {role!r}") from exc


def _record_grant(
    conn: psycopg.Connection[Any], *, tenant_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> None:
    """The grant's audit row and ``membership.granted`` event, in the grant's transaction (an
    operator action: actor ``system``). ``add_membership`` left the transaction scoped to the
    tenant, as both writers require."""
    # Imported here: the migration function applies files far more often than it grants.
    from lambdas.shared.audit import AuditWriter  # noqa: PLC0415
    from lambdas.shared.events import validated_payload  # noqa: PLC0415
    from lambdas.shared.outbox import OutboxWriter  # noqa: PLC0415

    payload = validated_payload(
        "membership.granted", 1, "membership", {"user_id": user_id, "role": role}
    )
    AuditWriter(conn, tenant_id=tenant_id, actor_id=None, actor_type="system").append(
        "membership.granted", resource_type="membership", resource_id=str(user_id), details=payload
    )
    OutboxWriter(conn, tenant_id=tenant_id).emit(
        "membership.granted",
        aggregate_type="membership",
        aggregate_id=str(user_id),
        payload=payload,
    )
