"""The members route group through its handler, on the real database and moto's Cognito."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import psycopg
import pytest

from lambdas.members.repository import MemberRepository
from lambdas.shared.constants import TENANT_CLAIM, TENANT_SETTING
from lambdas.shared.runtime import reset_runtime
from scripts.devstack.aws_resources import LocalResources
from tests.integration.conftest import World
from tests.support.database import TestDatabase
from tests.support.factories import TestTenant, TestUser, create_user
from tests.support.handlers import call

Conn = psycopg.Connection[dict[str, Any]]


def _email() -> str:
    return f"invitee-{uuid.uuid4().hex[:10]}@example.com"


def _cognito_user(pool_id: str, email: str) -> dict[str, str] | None:
    client = boto3.client("cognito-idp")
    try:
        user = client.admin_get_user(UserPoolId=pool_id, Username=email)
    except client.exceptions.UserNotFoundException:
        return None
    return {a["Name"]: a["Value"] for a in user["UserAttributes"]}


def _records(owner: Conn, tenant_id: uuid.UUID, action: str) -> list[dict[str, Any]]:
    owner.execute("BEGIN")
    owner.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(tenant_id)))
    rows = owner.execute(
        """
        SELECT a.resource_id, a.metadata, a.actor_user_id,
               (SELECT count(*) FROM alquimista_platform.domain_outbox AS o
                WHERE o.tenant_id = a.tenant_id AND o.event_type = a.action
                  AND o.aggregate_id = a.resource_id) AS events
        FROM alquimista_platform.audit_logs AS a
        WHERE a.tenant_id = %s AND a.action = %s ORDER BY a.seq
        """,
        (tenant_id, action),
    ).fetchall()
    owner.execute("COMMIT")
    return rows


@contextmanager
def runtime(db: TestDatabase, tenant_id: uuid.UUID) -> Iterator[Conn]:
    with db.runtime() as conn:
        conn.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(tenant_id)))
        yield conn
        conn.commit()


# -- list and get -------------------------------------------------------------------------------


def test_a_viewer_lists_the_tenants_members_with_their_roles(world: World) -> None:
    result = call("GET", "/api/members", user=world.a.user("viewer"))

    assert result.status == 200
    listed = {item["user_id"]: item["role"] for item in result.body["items"]}
    assert listed == {str(u.id): u.role for u in world.a.users.values()}
    assert str(world.b.user("admin").id) not in listed


def test_members_page_with_an_opaque_cursor(world: World, owner: Conn) -> None:
    for _ in range(3):
        create_user(owner, world.a.id, "viewer")
    admin = world.a.user("admin")

    first = call("GET", "/api/members", user=admin, query="limit=4")
    second = call(
        "GET", "/api/members", user=admin, query=f"limit=4&cursor={first.body['next_cursor']}"
    )

    assert len(first.body["items"]) == 4
    assert len(second.body["items"]) == 2
    assert second.body["next_cursor"] is None
    ids = [i["user_id"] for i in first.body["items"] + second.body["items"]]
    assert len(set(ids)) == 6


def test_a_cursor_this_api_never_issued_is_422(world: World) -> None:
    result = call("GET", "/api/members", user=world.a.user("admin"), query="cursor=bm9wZQ")
    assert result.status == 422
    assert result.body["error"]["code"] == "invalid_cursor"


def test_listing_filters_by_role(world: World) -> None:
    result = call("GET", "/api/members", user=world.a.user("member"), query="role=admin")
    assert [i["user_id"] for i in result.body["items"]] == [str(world.a.user("admin").id)]


# -- invitations --------------------------------------------------------------------------------


def test_an_admin_invites_a_new_user_by_email(
    world: World, lambda_env: LocalResources, owner: Conn
) -> None:
    # Given an e-mail no account has
    email = _email()
    admin = world.a.user("admin")

    # When the admin invites it as a member
    result = call(
        "POST", "/api/members/invitations", user=admin, body={"email": email, "role": "member"}
    )

    # Then Cognito holds the account, with the tenant as its default
    assert result.status == 201, result.body
    assert result.body["account_created"] is True
    member = result.body["member"]
    assert (member["email"], member["role"], member["status"]) == (email, "member", "active")
    account = _cognito_user(lambda_env.user_pool_id, email)
    assert account is not None
    assert account[TENANT_CLAIM] == str(world.a.id)
    # and the membership is listed
    listed = call("GET", f"/api/members/{member['user_id']}", user=world.a.user("viewer"))
    assert listed.status == 200
    assert listed.body["role"] == "member"
    # and the change is recorded, with ids only
    [record] = _records(owner, world.a.id, "membership.invited")
    assert record["resource_id"] == member["user_id"]
    assert record["actor_user_id"] == admin.id
    assert record["events"] == 1
    assert email not in json.dumps(record["metadata"])
    assert record["metadata"] == {
        "user_id": member["user_id"],
        "role": "member",
        "invited_by": str(admin.id),
        "account_created": True,
    }


def test_inviting_a_member_of_another_tenant_reuses_their_account(
    world: World, lambda_env: LocalResources
) -> None:
    other = world.b.user("viewer")

    result = call(
        "POST",
        "/api/members/invitations",
        user=world.a.user("admin"),
        body={"email": other.email.upper(), "role": "viewer"},
    )

    assert result.status == 201, result.body
    assert result.body["account_created"] is False
    assert result.body["member"]["user_id"] == str(other.id)
    assert _cognito_user(lambda_env.user_pool_id, other.email) is None
    # the account now acts in both tenants
    as_a = call("GET", "/api/members", user=other, headers={"x-tenant-id": str(world.a.id)})
    assert as_a.status == 200


def test_an_account_cognito_already_had_is_linked_not_recreated(
    world: World, lambda_env: LocalResources
) -> None:
    # Given an account provisioned in Cognito (e.g. a first federated sign-in) with no user row
    email = _email()
    boto3.client("cognito-idp").admin_create_user(
        UserPoolId=lambda_env.user_pool_id,
        Username=email,
        UserAttributes=[{"Name": "email", "Value": email}],
        MessageAction="SUPPRESS",
    )
    sub = _cognito_user(lambda_env.user_pool_id, email)["sub"]  # type: ignore[index]

    result = call(
        "POST",
        "/api/members/invitations",
        user=world.a.user("admin"),
        body={"email": email, "role": "viewer"},
    )

    assert result.status == 201, result.body
    assert result.body["account_created"] is False
    # and that account can now use the tenant
    claims = {"sub": sub, "email": email, TENANT_CLAIM: str(world.a.id)}
    assert call("GET", "/api/members", claims=claims).status == 200


def test_inviting_a_current_member_again_is_409(world: World) -> None:
    email = _email()
    admin = world.a.user("admin")
    body = {"email": email, "role": "member"}
    assert call("POST", "/api/members/invitations", user=admin, body=body).status == 201

    again = call(
        "POST", "/api/members/invitations", user=admin, body={"email": email, "role": "admin"}
    )
    existing = call(
        "POST",
        "/api/members/invitations",
        user=admin,
        body={"email": world.a.user("viewer").email, "role": "admin"},
    )

    assert again.status == 409
    assert again.body["error"]["code"] == "member_already_exists"
    assert existing.status == 409
    assert call("GET", "/api/members", user=admin, query="role=admin").body["items"] == [
        call("GET", f"/api/members/{admin.id}", user=admin).body
    ]


def test_a_retried_invitation_with_its_idempotency_key_is_replayed(
    world: World, lambda_env: LocalResources, owner: Conn
) -> None:
    body = {"email": _email(), "role": "viewer"}
    headers = {"idempotency-key": f"invite-{uuid.uuid4()}"}
    admin = world.a.user("admin")

    first = call("POST", "/api/members/invitations", user=admin, body=body, headers=headers)
    again = call("POST", "/api/members/invitations", user=admin, body=body, headers=headers)

    assert (first.status, again.status) == (201, 201)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.body == first.body
    assert len(_records(owner, world.a.id, "membership.invited")) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "role": "member"},
        {"email": "two@@example.com", "role": "member"},
        {"email": "spaces in@example.com", "role": "member"},
        {"email": "ana@example.com", "role": "owner"},
        {"email": "ana@example.com"},
        {"email": "ana@example.com", "role": "member", "tenant_id": str(uuid.uuid4())},
    ],
    ids=["no-at", "two-ats", "space", "unknown-role", "no-role", "unknown-field"],
)
def test_a_bad_invitation_is_422_and_changes_nothing(
    world: World, lambda_env: LocalResources, body: dict[str, Any]
) -> None:
    result = call("POST", "/api/members/invitations", user=world.a.user("admin"), body=body)

    assert result.status == 422
    client = boto3.client("cognito-idp")
    assert client.list_users(UserPoolId=lambda_env.user_pool_id)["Users"] == []


def test_a_cognito_outage_is_503_and_leaves_no_membership(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER_POOL_ID", "eu-west-1_doesnotexist")
    reset_runtime()
    email = _email()

    result = call(
        "POST",
        "/api/members/invitations",
        user=world.a.user("admin"),
        body={"email": email, "role": "member"},
    )

    assert result.status == 503
    assert result.body["error"]["code"] == "identity_provider_unavailable"
    listed = call("GET", "/api/members", user=world.a.user("admin")).body["items"]
    assert email not in {i["email"] for i in listed}


# -- roles --------------------------------------------------------------------------------------


def test_an_admin_changes_a_members_role(world: World, owner: Conn) -> None:
    member = world.a.user("member")

    result = call(
        "PATCH", f"/api/members/{member.id}", user=world.a.user("admin"), body={"role": "admin"}
    )
    again = call(
        "PATCH", f"/api/members/{member.id}", user=world.a.user("admin"), body={"role": "admin"}
    )

    assert result.status == 200
    assert result.body["role"] == "admin"
    assert again.status == 200
    [record] = _records(owner, world.a.id, "membership.role_changed")  # the no-op records none
    assert record["metadata"]["from_role"] == "member"
    assert record["metadata"]["to_role"] == "admin"
    assert record["events"] == 1
    # the new role applies on the member's next request
    assert call("GET", "/api/audit", user=member).status == 200


def test_the_last_admin_cannot_be_demoted(world: World, owner: Conn) -> None:
    admin = world.a.user("admin")

    result = call("PATCH", f"/api/members/{admin.id}", user=admin, body={"role": "member"})

    assert result.status == 409
    assert result.body["error"]["code"] == "last_admin"
    assert "memberships_last_admin" not in json.dumps(result.body)
    assert call("GET", f"/api/members/{admin.id}", user=admin).body["role"] == "admin"
    assert _records(owner, world.a.id, "membership.role_changed") == []


def test_an_admin_may_step_down_when_another_admin_remains(world: World, owner: Conn) -> None:
    create_user(owner, world.a.id, "admin")
    admin = world.a.user("admin")

    result = call("PATCH", f"/api/members/{admin.id}", user=admin, body={"role": "viewer"})

    assert result.status == 200
    assert call("GET", "/api/members", user=admin).status == 200  # viewers read members
    assert (
        call("PATCH", f"/api/members/{admin.id}", user=admin, body={"role": "admin"}).status == 403
    )


def test_a_role_change_with_an_unknown_role_is_422(world: World) -> None:
    member = world.a.user("member")
    result = call(
        "PATCH", f"/api/members/{member.id}", user=world.a.user("admin"), body={"role": "root"}
    )
    assert result.status == 422


# -- removal ------------------------------------------------------------------------------------


def _pending_request(
    db: TestDatabase, tenant: TestTenant, requester: TestUser, quorum: int
) -> uuid.UUID:
    with runtime(db, tenant.id) as conn:
        row = conn.execute(
            """
            INSERT INTO alquimista_platform.approval_requests
                (tenant_id, subject_kind, subject_id, action_type, summary, requested_by,
                 required_approvals, expires_at)
            VALUES (%s, 'chat.message', %s, 'chat.send', 'needs approval', %s, %s, %s)
            RETURNING id
            """,
            (
                tenant.id,
                str(uuid.uuid4()),
                requester.id,
                quorum,
                datetime.now(UTC) + timedelta(hours=1),
            ),
        ).fetchone()
    assert row is not None
    request_id: uuid.UUID = row["id"]
    return request_id


def _approve(db: TestDatabase, tenant: TestTenant, request_id: uuid.UUID, decider: TestUser) -> Any:
    with runtime(db, tenant.id) as conn:
        return conn.execute(
            "SELECT * FROM alquimista_platform.decide_approval_v1(%s, %s, 'approved', 'ok')",
            (request_id, decider.id),
        ).fetchone()


def _status(db: TestDatabase, tenant: TestTenant, request_id: uuid.UUID) -> str:
    with runtime(db, tenant.id) as conn:
        row = conn.execute(
            "SELECT status FROM alquimista_platform.approval_requests WHERE id = %s", (request_id,)
        ).fetchone()
    assert row is not None
    return str(row["status"])


def test_removing_a_member_handles_their_pending_approvals(
    world: World, db: TestDatabase, owner: Conn
) -> None:
    # Given a leaving admin who asked for one approval and approved another (quorum 2)
    tenant = world.a
    leaving = create_user(owner, tenant.id, "admin")
    asked = _pending_request(db, tenant, leaving, quorum=1)
    other = _pending_request(db, tenant, tenant.user("member"), quorum=2)
    decided = _approve(db, tenant, other, leaving)
    assert decided["approvals"] == 1

    # When an admin removes them
    result = call("DELETE", f"/api/members/{leaving.id}", user=tenant.user("admin"))

    # Then their request is canceled and their approval no longer counts
    assert result.status == 200, result.body
    assert result.body["canceled_approval_requests"] == [str(asked)]
    assert result.body["withdrawn_decisions"] == [str(decided["decision_id"])]
    assert _status(db, tenant, asked) == "canceled"
    assert _approve(db, tenant, other, tenant.user("admin"))["status"] == "pending"
    # and they are no member any more: their next request is refused
    assert call("GET", f"/api/members/{leaving.id}", user=tenant.user("admin")).status == 404
    assert call("GET", "/api/members", user=leaving).status == 403
    [record] = _records(owner, tenant.id, "membership.revoked")
    assert record["metadata"]["canceled_approval_requests"] == [str(asked)]
    assert record["metadata"]["withdrawn_decisions"] == [str(decided["decision_id"])]
    assert record["events"] == 1
    assert leaving.email not in json.dumps(record["metadata"])
    # and the canceled request is announced as the cancel route announces one, by its requester
    [canceled] = _records(owner, tenant.id, "approval.canceled")
    assert canceled["resource_id"] == str(asked)
    assert canceled["metadata"] == {"approval_id": str(asked), "canceled_by": str(leaving.id)}
    assert canceled["events"] == 1


def test_the_last_admin_cannot_be_removed(world: World) -> None:
    admin = world.a.user("admin")

    result = call("DELETE", f"/api/members/{admin.id}", user=admin)

    assert result.status == 409
    assert result.body["error"]["code"] == "last_admin"
    assert call("GET", f"/api/members/{admin.id}", user=admin).status == 200


def test_removing_someone_who_is_no_member_is_404(world: World) -> None:
    result = call("DELETE", f"/api/members/{uuid.uuid4()}", user=world.a.user("admin"))
    assert result.status == 404
    assert result.body["error"]["code"] == "member_not_found"


# -- tenant isolation ---------------------------------------------------------------------------


def test_an_admin_cannot_touch_another_tenants_members(world: World) -> None:
    admin = world.a.user("admin")
    theirs = world.b.user("member")

    assert call("GET", f"/api/members/{theirs.id}", user=admin).status == 404
    changed = call("PATCH", f"/api/members/{theirs.id}", user=admin, body={"role": "admin"})
    removed = call("DELETE", f"/api/members/{theirs.id}", user=admin)

    assert (changed.status, removed.status) == (404, 404)
    theirs_now = call("GET", f"/api/members/{theirs.id}", user=world.b.user("admin"))
    assert theirs_now.body["role"] == "member"


# -- the last admin, under concurrency ----------------------------------------------------------


def test_concurrent_demotions_of_the_last_two_admins_leave_one(
    world: World, db: TestDatabase, owner: Conn
) -> None:
    # Given a tenant with exactly two admins
    tenant = world.a
    second = create_user(owner, tenant.id, "admin")
    demote = """
        UPDATE alquimista_platform.memberships
        SET role_id = (SELECT id FROM alquimista_platform.roles WHERE name = 'member')
        WHERE tenant_id = %s AND user_id = %s
    """
    outcome: dict[str, Any] = {}

    # When both are demoted by two transactions at once (the second starts while the first
    # is still open)
    with db.runtime() as first:
        first.execute("SELECT set_config(%s, %s, true)", (TENANT_SETTING, str(tenant.id)))
        first.execute(demote, (tenant.id, tenant.user("admin").id))

        def demote_second() -> None:
            try:
                with runtime(db, tenant.id) as conn:
                    conn.execute(demote, (tenant.id, second.id))
                outcome["second"] = "committed"
            except psycopg.errors.CheckViolation as error:
                outcome["second"] = error.diag.constraint_name

        thread = threading.Thread(target=demote_second)
        thread.start()
        thread.join(timeout=1)
        assert thread.is_alive(), "the second demotion must wait for the first"
        first.commit()
        thread.join(timeout=30)

    # Then the second is refused and the tenant keeps one admin
    assert outcome["second"] == "memberships_last_admin"
    admins = call("GET", "/api/members", user=second, query="role=admin").body["items"]
    assert [a["user_id"] for a in admins] == [str(second.id)]


def test_deleting_a_tenant_takes_its_last_admin_with_it(world: World, owner_conn: Conn) -> None:
    with owner_conn.transaction():
        owner_conn.execute("DELETE FROM alquimista_platform.tenants WHERE id = %s", (world.b.id,))
    row = owner_conn.execute(
        "SELECT count(*) AS n FROM alquimista_platform.memberships WHERE tenant_id = %s",
        (world.b.id,),
    ).fetchone()
    assert row is not None
    assert row["n"] == 0


# -- an account with no membership --------------------------------------------------------------


def test_an_account_with_no_membership_is_told_so(world: World) -> None:
    fresh = {"sub": str(uuid.uuid4()), "email": "fresh@example.com"}

    no_tenant = call("GET", "/api/members", claims=fresh)
    with_tenant = call("GET", "/api/plans", claims={**fresh, TENANT_CLAIM: str(world.a.id)})

    for result in (no_tenant, with_tenant):
        assert result.status == 403
        assert result.body["error"]["code"] == "membership_required"
        assert "invite" in result.body["error"]["message"]


def test_a_member_of_another_tenant_is_refused_as_before(world: World) -> None:
    result = call(
        "GET",
        "/api/members",
        user=world.b.user("admin"),
        headers={"x-tenant-id": str(world.a.id)},
    )
    assert result.status == 403
    assert result.body["error"]["code"] == "forbidden"


def test_the_member_repository_filters_by_tenant_itself(world: World, owner_conn: Conn) -> None:
    # Given tenant B's member, on a connection row-level security does not bind
    theirs = world.b.user("member")

    # When tenant A's repository reads, changes and removes it
    with owner_conn.transaction():
        repository = MemberRepository(owner_conn, world.a.id)
        got = repository.get(theirs.id)
        listed = repository.page(role=None, after=None, limit=100)
        removed = repository.remove(theirs.id)

    # Then it finds nothing and changes nothing
    assert got is None
    assert str(theirs.id) not in {str(m.user_id) for m in listed}
    assert removed is None
    assert MemberRepository(owner_conn, world.b.id).get(theirs.id) is not None
