"""The operator action behind scripts/create_user.py, through the migration Lambda."""

from __future__ import annotations

import time
import uuid
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.migrations.handler import lambda_handler
from lambdas.migrations.memberships import UnknownRole, add_membership
from scripts.devstack.gateway import LambdaContextStub
from tests.support.factories import create_tenant, create_user


def _invoke(membership: dict[str, Any]) -> dict[str, Any]:
    context = LambdaContextStub(
        function_name="alquimista-dev-migrations", deadline_ms=time.time() * 1000 + 60_000
    )
    event = {"action": "grant_membership", "membership": membership}
    return lambda_handler(event, cast("LambdaContext", context))


def _request(**overrides: Any) -> dict[str, Any]:
    return {
        "tenant_slug": f"t-{uuid.uuid4().hex[:8]}",
        "tenant_name": "Initech Ltda",
        "cognito_sub": str(uuid.uuid4()),
        "email": f"{uuid.uuid4().hex[:6]}@initech.example.com",
        "role": "admin",
        **overrides,
    }


def _membership_rows(db, tenant_id: str) -> list[dict[str, Any]]:
    with db.owner() as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, false)", (tenant_id,))
        rows: list[dict[str, Any]] = conn.execute(
            """
            SELECT u.email, r.name AS role, m.status
            FROM alquimista_platform.memberships AS m
            JOIN alquimista_platform.users AS u ON u.id = m.user_id
            JOIN alquimista_platform.roles AS r ON r.id = m.role_id
            WHERE m.tenant_id = %s
            """,
            (tenant_id,),
        ).fetchall()
        return rows


def test_a_new_tenant_and_user_are_created_with_the_membership(lambda_env, db) -> None:
    request = _request()

    result = _invoke(request)

    assert result["ok"] is True
    assert result["tenant_created"] is True
    assert _membership_rows(db, result["tenant_id"]) == [
        {"email": request["email"], "role": "admin", "status": "active"}
    ]


def test_granting_again_changes_the_role_and_nothing_else(lambda_env, db) -> None:
    request = _request(role="member")
    first = _invoke(request)

    again = _invoke({**request, "role": "viewer", "tenant_name": None})

    assert again["ok"] is True
    assert again["tenant_created"] is False
    assert again["user_id"] == first["user_id"]
    assert [row["role"] for row in _membership_rows(db, first["tenant_id"])] == ["viewer"]


def test_the_tenants_last_admin_is_not_demoted(lambda_env, db) -> None:
    request = _request()
    first = _invoke(request)

    again = _invoke({**request, "role": "viewer", "tenant_name": None})

    assert again["ok"] is False
    assert "last active admin" in again["error"]
    assert [row["role"] for row in _membership_rows(db, first["tenant_id"])] == ["admin"]


def test_an_unknown_tenant_without_a_name_is_refused(lambda_env) -> None:
    result = _invoke(_request(tenant_name=None))

    assert result["ok"] is False
    assert "does not exist" in result["error"]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"role": "owner"}, "role"),
        ({"email": "not-an-email"}, "email"),
        ({"cognito_sub": "abc"}, "cognito_sub"),
        ({"tenant_slug": "Bad Slug"}, "tenant_slug"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_requests_name_the_field_and_write_nothing(lambda_env, db, override, field) -> None:
    result = _invoke(_request(**override))

    assert result["ok"] is False
    assert field in result["error"]
    with db.owner() as conn:
        count = conn.execute("SELECT count(*) AS n FROM alquimista_platform.users").fetchone()
    assert count == {"n": 0}


def _joined(owner, tenant_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any]:
    with owner.transaction():
        owner.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant_id),))
        row: dict[str, Any] = owner.execute(
            """
            SELECT r.name AS role, m.status, m.joined_at
            FROM alquimista_platform.memberships AS m
            JOIN alquimista_platform.roles AS r ON r.id = m.role_id
            WHERE m.tenant_id = %s AND m.user_id = %s
            """,
            (tenant_id, user_id),
        ).fetchone()
    return row


def test_an_unknown_role_is_refused_not_silently_skipped(owner) -> None:
    tenant = create_tenant(owner)
    viewer = tenant.user("viewer")

    with pytest.raises(UnknownRole, match="'owner'"), owner.transaction():
        add_membership(owner, tenant_id=tenant.id, user_id=viewer.id, role="owner")

    assert _joined(owner, tenant.id, viewer.id)["role"] == "viewer"


def test_an_invited_member_joins_when_activated_and_keeps_that_date(owner) -> None:
    # Given an invited member: no join date yet
    tenant = create_tenant(owner)
    user = create_user(owner, tenant.id, "member", status="invited")
    assert _joined(owner, tenant.id, user.id)["joined_at"] is None

    # When activated, then promoted
    with owner.transaction():
        add_membership(owner, tenant_id=tenant.id, user_id=user.id, role="member")
    joined = _joined(owner, tenant.id, user.id)["joined_at"]
    with owner.transaction():
        add_membership(owner, tenant_id=tenant.id, user_id=user.id, role="admin")

    # Then the join date is the activation's, and the role changed
    after = _joined(owner, tenant.id, user.id)
    assert joined is not None
    assert after == {"role": "admin", "status": "active", "joined_at": joined}
