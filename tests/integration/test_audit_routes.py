"""GET /api/audit and GET /api/audit/verify through the handler, and the anchoring job."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import psycopg
import pytest
from botocore.exceptions import ClientError

from lambdas.audit.anchors import LATEST_KEY
from lambdas.audit.jobs import anchor_audit_heads_job
from lambdas.shared.runtime import get_runtime
from scripts.devstack.aws_resources import LocalResources
from tests.integration.conftest import World
from tests.support.audit import append_audit, tampering
from tests.support.database import TestDatabase
from tests.support.handlers import call

Conn = psycopg.Connection[dict[str, Any]]


def _anchor_now() -> int:
    runtime = get_runtime()
    scope = lambda: runtime.request_scope(request_id=None, read_only=False, actor_type="system")  # noqa: E731
    return anchor_audit_heads_job(runtime, scope)()


def _page_through(user: Any, query: str = "") -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = call("GET", "/api/audit", user=user, query=f"limit=3{query}{cursor}")
        assert page.status == 200, page.body
        seen += page.body["items"]
        if page.body["next_cursor"] is None:
            return seen
        cursor = f"&cursor={page.body['next_cursor']}"


def test_an_admin_pages_through_the_log_newest_first(world: World, db: TestDatabase) -> None:
    append_audit(db, world.a.id, 7)

    items = _page_through(world.a.user("admin"))

    assert [item["seq"] for item in items] == [7, 6, 5, 4, 3, 2, 1]
    assert len(items[0]["row_hash"]) == 64
    assert items[0]["prev_hash"] == items[1]["row_hash"]
    assert items[0]["details"]["n"] == 6


def test_the_log_filters_by_actor_action_resource_and_time(world: World, db: TestDatabase) -> None:
    admin = world.a.user("admin")
    append_audit(db, world.a.id, 2, actor_id=admin.id, action="plan.changed", resource_type="plan")
    append_audit(db, world.a.id, 3, action="agent.activated")

    by_actor = _page_through(admin, f"&actor={admin.id}")
    by_action = _page_through(admin, "&action=agent.activated")
    by_resource = _page_through(admin, "&resource_type=plan&resource_id=plan-1")
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    none_since = _page_through(admin, f"&since={future}")
    all_until = _page_through(admin, f"&until={future}")

    assert [i["seq"] for i in by_actor] == [2, 1]
    assert [i["seq"] for i in by_action] == [5, 4, 3]
    assert [i["seq"] for i in by_resource] == [2]
    assert none_since == []
    assert len(all_until) == 5


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_only_admins_read_the_audit_log(world: World, db: TestDatabase, role: str) -> None:
    append_audit(db, world.a.id, 1)
    user = world.a.user(role)

    listing = call("GET", "/api/audit", user=user)
    verify = call("GET", "/api/audit/verify", user=user)

    assert (listing.status, verify.status) == (403, 403)


def test_an_admin_never_sees_another_tenants_rows(world: World, db: TestDatabase) -> None:
    append_audit(db, world.a.id, 2)
    append_audit(db, world.b.id, 3)
    admin_a = world.a.user("admin")

    own = _page_through(admin_a)
    other = call("GET", "/api/audit", user=admin_a, headers={"X-Tenant-Id": str(world.b.id)})

    assert len(own) == 2
    assert {item["id"] for item in own}.isdisjoint(
        {item["id"] for item in _page_through(world.b.user("admin"))}
    )
    assert other.status == 403


@pytest.mark.parametrize(
    "query", ["cursor=%%%", "cursor=c2VxOjA", "limit=0", "limit=201", "actor=nope", "action=A B"]
)
def test_bad_listing_queries_are_422(world: World, query: str) -> None:
    result = call("GET", "/api/audit", user=world.a.user("admin"), query=query)

    assert result.status == 422, result.body


def test_verify_reports_an_intact_chain_and_its_anchor(
    world: World, db: TestDatabase, lambda_env: LocalResources
) -> None:
    append_audit(db, world.a.id, 4)
    assert _anchor_now() == 1  # only tenant A has a chain yet
    append_audit(db, world.a.id, 2)

    result = call("GET", "/api/audit/verify", user=world.a.user("admin"))

    assert result.status == 200
    assert result.body["ok"] is True
    assert (result.body["checked"], result.body["last_seq"]) == (6, 6)
    assert result.body["anchor"]["seq"] == 4


def test_verify_names_the_seq_of_an_edited_row(world: World, db: TestDatabase, owner: Conn) -> None:
    append_audit(db, world.a.id, 5)
    with tampering(owner):
        owner.execute(
            "UPDATE alquimista_platform.audit_logs SET outcome = 'denied'"
            " WHERE tenant_id = %s AND seq = 3",
            (world.a.id,),
        )

    result = call("GET", "/api/audit/verify", user=world.a.user("admin"))
    other = call("GET", "/api/audit/verify", user=world.b.user("admin"))

    assert (result.status, result.body["ok"], result.body["first_bad_seq"]) == (200, False, 3)
    assert other.body["ok"] is True


def test_verify_catches_a_deleted_tail_against_the_s3_anchor(
    world: World, db: TestDatabase, owner: Conn, lambda_env: LocalResources
) -> None:
    append_audit(db, world.a.id, 3)
    _anchor_now()
    with tampering(owner):
        owner.execute(
            "DELETE FROM alquimista_platform.audit_logs WHERE tenant_id = %s AND seq = 3",
            (world.a.id,),
        )
        owner.execute(
            """
            UPDATE alquimista_platform.audit_heads AS h SET seq = 2, row_hash = l.row_hash
            FROM alquimista_platform.audit_logs AS l
            WHERE h.tenant_id = %s AND l.tenant_id = h.tenant_id AND l.seq = 2
            """,
            (world.a.id,),
        )

    result = call("GET", "/api/audit/verify", user=world.a.user("admin"))

    assert (result.body["ok"], result.body["first_bad_seq"]) == (False, 3)
    assert "anchor" in result.body["reason"]


def test_verify_checks_a_range(world: World, db: TestDatabase) -> None:
    append_audit(db, world.a.id, 6)
    admin = world.a.user("admin")

    part = call("GET", "/api/audit/verify", user=admin, query="from_seq=3&to_seq=5")
    backwards = call("GET", "/api/audit/verify", user=admin, query="from_seq=5&to_seq=3")
    beyond = call("GET", "/api/audit/verify", user=admin, query="from_seq=9")

    assert (part.body["ok"], part.body["checked"], part.body["last_seq"]) == (True, 3, 5)
    assert backwards.status == 422
    assert beyond.status == 422


def test_the_anchor_job_writes_every_head_under_compliance_object_lock(
    world: World, db: TestDatabase, lambda_env: LocalResources
) -> None:
    records_a = append_audit(db, world.a.id, 2)
    records_b = append_audit(db, world.b.id, 5)

    anchored = _anchor_now()

    s3 = boto3.client("s3")
    bucket = lambda_env.audit_anchor_bucket
    head = s3.head_object(Bucket=bucket, Key=LATEST_KEY)
    document = s3.get_object(Bucket=bucket, Key=LATEST_KEY)["Body"].read()
    assert anchored == 2
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=300)
    assert records_a[-1].row_hash.encode() in document
    assert records_b[-1].row_hash.encode() in document
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key=LATEST_KEY, VersionId=head["VersionId"])


def test_the_anchor_job_fails_without_a_bucket(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scripts.devstack.stack import reset_lambda_caches  # noqa: PLC0415

    monkeypatch.delenv("AUDIT_ANCHOR_BUCKET")
    reset_lambda_caches()

    with pytest.raises(RuntimeError, match="AUDIT_ANCHOR_BUCKET"):
        _anchor_now()


def test_a_tenant_with_no_rows_verifies_empty(world: World) -> None:
    result = call("GET", "/api/audit/verify", user=world.b.user("admin"))

    assert result.body == {
        "ok": True,
        "checked": 0,
        "first_bad_seq": None,
        "reason": None,
        "last_seq": None,
        "last_hash": None,
        "anchor": None,
    }


def test_unused_uuid_actor_returns_nothing(world: World, db: TestDatabase) -> None:
    append_audit(db, world.a.id, 1)

    result = _page_through(world.a.user("admin"), f"&actor={uuid.uuid4()}")

    assert result == []
