"""Identity from JWT claims, tenant and role from PostgreSQL, on every request."""

from __future__ import annotations

import uuid

from lambdas.shared.routes import ROUTES
from tests.integration.conftest import World
from tests.support.factories import create_user
from tests.support.handlers import call


def test_a_request_without_claims_is_401_with_a_json_body(world: World) -> None:
    result = call("GET", "/api/plans")

    assert result.status == 401
    assert result.body["error"]["code"] == "unauthorized"
    assert result.body["error"]["request_id"]


def test_a_token_whose_subject_is_not_a_uuid_is_401(world: World) -> None:
    claims = {**world.a.user("admin").claims(), "sub": "not-a-uuid"}

    assert call("GET", "/api/plans", claims=claims).status == 401


def test_an_unknown_user_is_403_membership_required(world: World) -> None:
    claims = {**world.a.user("admin").claims(), "sub": str(uuid.uuid4())}

    result = call("GET", "/api/plans", claims=claims)

    assert result.status == 403
    assert result.body["error"]["code"] == "membership_required"


def test_a_user_cannot_act_in_a_tenant_they_do_not_belong_to(world: World) -> None:
    result = call(
        "GET",
        "/api/plans",
        user=world.a.user("admin"),
        headers={"x-tenant-id": str(world.b.id)},
    )

    assert result.status == 403


def test_a_claimed_tenant_without_membership_is_403(world: World) -> None:
    claims = {**world.a.user("admin").claims(), "custom:tenant_id": str(world.b.id)}

    assert call("GET", "/api/plans", claims=claims).status == 403


def test_a_malformed_tenant_header_is_422(world: World) -> None:
    result = call("GET", "/api/plans", user=world.a.user("admin"), headers={"x-tenant-id": "acme"})

    assert result.status == 422


def test_no_tenant_at_all_is_403(world: World) -> None:
    claims = {"sub": str(world.a.user("admin").sub), "email": "x@example.com"}

    assert call("GET", "/api/plans", claims=claims).status == 403


def test_a_member_of_two_tenants_picks_one_with_the_header(world: World, owner) -> None:
    # Given A's viewer is also B's admin
    viewer = world.a.user("viewer")
    owner.execute("BEGIN")
    owner.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(world.b.id),))
    owner.execute(
        """
        INSERT INTO alquimista_platform.memberships (tenant_id, user_id, role_id)
        SELECT %s, %s, id FROM alquimista_platform.roles WHERE name = 'admin'
        """,
        (world.b.id, viewer.id),
    )
    owner.execute("COMMIT")

    as_b = call("GET", "/api/plans", user=viewer, headers={"x-tenant-id": str(world.b.id)})

    assert as_b.status == 200


def test_a_suspended_membership_or_tenant_is_403(world: World, owner) -> None:
    suspended = create_user(owner, world.a.id, "admin", status="suspended")
    assert call("GET", "/api/plans", user=suspended).status == 403

    owner.execute(
        "UPDATE alquimista_platform.tenants SET status = 'suspended' WHERE id = %s",
        (world.a.id,),
    )
    assert call("GET", "/api/plans", user=world.a.user("admin")).status == 403


def test_a_revoked_membership_takes_effect_on_the_next_request(world: World, owner) -> None:
    viewer = world.a.user("viewer")
    assert call("GET", "/api/plans", user=viewer).status == 200

    owner.execute("BEGIN")
    owner.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(world.a.id),))
    owner.execute("DELETE FROM alquimista_platform.memberships WHERE user_id = %s", (viewer.id,))
    owner.execute("COMMIT")

    assert call("GET", "/api/plans", user=viewer).status == 403


def test_authorization_comes_before_validation(world: World) -> None:
    outsider = {**world.a.user("admin").claims(), "sub": str(uuid.uuid4())}

    result = call("GET", "/api/plans/not-a-uuid", claims=outsider)

    assert result.status == 403


def test_every_route_permission_exists_in_the_rbac_tables(world: World, owner) -> None:
    codes = {
        row["code"]
        for row in owner.execute("SELECT code FROM alquimista_platform.permissions").fetchall()
    }

    for route in ROUTES:
        if not route.public:
            assert route.permission in codes, route.route_key


def test_only_admins_may_activate_agents(world: World, owner) -> None:
    rows = owner.execute(
        """
        SELECT r.name FROM alquimista_platform.role_permissions rp
        JOIN alquimista_platform.roles r ON r.id = rp.role_id
        JOIN alquimista_platform.permissions p ON p.id = rp.permission_id
        WHERE p.code = 'agents:activate'
        """
    ).fetchall()

    assert {row["name"] for row in rows} == {"admin"}
