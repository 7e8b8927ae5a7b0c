"""The leads route group through its handler: versions and preconditions, duplicates, the list,
sync with conflicts, consent, data subject requests and the processing record."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from scripts.devstack.aws_resources import LocalResources
from tests.integration.conftest import World
from tests.support.factories import TestUser
from tests.support.handlers import HandlerResult, call

Conn = psycopg.Connection[dict[str, Any]]


def _create(user: TestUser, **fields: Any) -> HandlerResult:
    result = call("POST", "/api/leads", user=user, body=fields)
    return result


def _lead(user: TestUser, **fields: Any) -> dict[str, Any]:
    result = _create(user, **fields)
    assert result.status == 201, result.body
    body: dict[str, Any] = result.body
    return body


def test_a_lead_is_created_read_and_updated_with_its_etag(world: World) -> None:
    member = world.a.user("member")

    created = _create(
        member, full_name="Ana Lima", email=" Ana.Lima@Example.COM ", phone="(11) 98765-4321"
    )

    assert created.status == 201, created.body
    assert created.headers["ETag"] == '"1"'
    assert created.body["email_normalized"] == "ana.lima@example.com"
    assert created.body["phone_e164"] == "+5511987654321"
    lead_id = created.body["id"]
    read = call("GET", f"/api/leads/{lead_id}", user=world.a.user("viewer"))
    assert (read.status, read.headers["ETag"]) == (200, '"1"')

    updated = call(
        "PATCH",
        f"/api/leads/{lead_id}",
        user=member,
        body={"status": "contacted", "tags": ["vip"]},
        headers={"If-Match": '"1"'},
    )

    assert updated.status == 200, updated.body
    assert updated.headers["ETag"] == '"2"'
    assert (updated.body["status"], updated.body["tags"], updated.body["full_name"]) == (
        "contacted",
        ["vip"],
        "Ana Lima",
    )


def test_an_update_without_if_match_is_428_and_a_stale_one_412_with_the_current_version(
    world: World,
) -> None:
    member = world.a.user("member")
    lead = _lead(member, full_name="Bruno Reis")
    path = f"/api/leads/{lead['id']}"
    assert (
        call("PATCH", path, user=member, body={"score": 5}, headers={"If-Match": '"1"'}).status
        == 200
    )

    missing = call("PATCH", path, user=member, body={"score": 7})
    stale = call("PATCH", path, user=member, body={"score": 7}, headers={"If-Match": '"1"'})
    garbage = call("PATCH", path, user=member, body={"score": 7}, headers={"If-Match": "*"})
    stale_delete = call("DELETE", path, user=member, headers={"If-Match": '"1"'})

    assert (missing.status, missing.body["error"]["code"]) == (428, "precondition_required")
    assert (stale.status, stale.body["error"]["code"]) == (412, "precondition_failed")
    assert stale.body["error"]["details"] == [{"current_version": 2}]
    assert garbage.status == 400
    assert stale_delete.status == 412
    assert call("GET", path, user=member).body["score"] == 5


def test_a_duplicate_names_the_existing_lead_and_a_soft_deleted_one_frees_the_identifier(
    world: World,
) -> None:
    member = world.a.user("member")
    first = _lead(member, full_name="Carla Dias", email="carla@example.com")

    duplicate = _create(member, full_name="Carla D.", email="CARLA@example.com")

    assert duplicate.status == 409
    assert duplicate.body["error"]["code"] == "duplicate_lead"
    assert duplicate.body["error"]["details"][0]["existing_lead_id"] == first["id"]
    deleted = call("DELETE", f"/api/leads/{first['id']}", user=member, headers={"If-Match": '"1"'})
    assert (deleted.status, deleted.body["deleted_at"] is not None) == (200, True)
    assert call("GET", f"/api/leads/{first['id']}", user=member).status == 404
    assert _create(member, full_name="Carla Dias", email="carla@example.com").status == 201


def test_invalid_identifiers_are_refused_naming_the_field(world: World) -> None:
    member = world.a.user("member")

    bad_tax_id = _create(member, full_name="X", company_tax_id="11.111.111/1111-11")
    bad_phone = _create(member, full_name="X", phone="123")
    unknown = _create(member, full_name="X", favourite_colour="blue")

    assert (bad_tax_id.status, bad_tax_id.body["error"]["code"]) == (422, "invalid_lead")
    assert bad_phone.status == 422
    assert unknown.status == 422


def test_the_list_filters_and_pages_with_a_cursor(world: World) -> None:
    member = world.a.user("member")
    for n in range(5):
        _lead(
            member,
            full_name=f"Lead {n}",
            company="Acme Ltda" if n % 2 else "Beta SA",
            tags=["t"] if n < 3 else [],
        )
    _lead(world.b.user("member"), full_name="Other tenant Acme", company="Acme Ltda")

    acme = call("GET", "/api/leads", user=member, query="q=acme")
    tagged = call("GET", "/api/leads", user=member, query="tag=t&limit=2")
    rest = call(
        "GET", "/api/leads", user=member, query=f"tag=t&limit=2&cursor={tagged.body['next_cursor']}"
    )
    bad = call("GET", "/api/leads", user=member, query="cursor=not-a-cursor")

    assert sorted(i["full_name"] for i in acme.body["items"]) == ["Lead 1", "Lead 3"]
    assert len(tagged.body["items"]) == 2
    assert len(rest.body["items"]) == 1
    assert rest.body["next_cursor"] is None
    assert {i["id"] for i in tagged.body["items"]}.isdisjoint({i["id"] for i in rest.body["items"]})
    assert bad.status == 400


def _push(user: TestUser, device: str, *mutations: dict[str, Any]) -> HandlerResult:
    return call(
        "POST",
        "/api/leads/sync",
        user=user,
        body={"device_id": device, "mutations": list(mutations)},
    )


def test_two_clients_editing_the_same_lead_offline_get_a_conflict_with_both_versions(
    world: World,
) -> None:
    # Given a lead both phones synced at version 1
    phone_a, phone_b = world.a.user("member"), world.a.user("admin")
    lead = _lead(phone_a, full_name="Diego Alves", company="Old Co")
    feed = call("GET", "/api/leads/changes", user=phone_b)
    assert [c["id"] for c in feed.body["changes"]] == [lead["id"]]
    base = {k: lead[k] for k in ("full_name", "company", "status")}

    # When both edit it offline and push, A first
    first = _push(phone_a, "phone-a", {
        "client_mutation_id": "a-1", "op": "update", "id": lead["id"], "base_version": 1,
        "fields": base | {"company": "Company A"},
    })  # fmt: skip
    second = _push(phone_b, "phone-b", {
        "client_mutation_id": "b-1", "op": "update", "id": lead["id"], "base_version": 1,
        "fields": base | {"company": "Company B"},
    })  # fmt: skip

    # Then A applied, B got a conflict, stored with both versions
    assert first.status == 200, first.body
    assert first.body["results"][0]["outcome"] == "applied"
    [result] = second.body["results"]
    assert (result["outcome"], result["reason"], result["version"]) == (
        "conflict",
        "update_update",
        2,
    )
    conflicts = call("GET", "/api/leads/conflicts", user=phone_b).body["items"]
    [conflict] = conflicts
    assert conflict["id"] == result["conflict_id"]
    assert conflict["mine"]["company"] == "Company B"
    assert conflict["theirs"]["company"] == "Company A"

    # and a replayed push changes nothing
    replay = _push(phone_b, "phone-b", {
        "client_mutation_id": "b-1", "op": "update", "id": lead["id"], "base_version": 1,
        "fields": base | {"company": "Company B"},
    })  # fmt: skip
    assert replay.body["results"][0]["replayed"] is True
    assert len(call("GET", "/api/leads/conflicts", user=phone_b).body["items"]) == 1

    # When B keeps its version
    resolved = call(
        "POST",
        f"/api/leads/conflicts/{conflict['id']}/resolve",
        user=phone_b,
        body={"resolution": "keep_mine"},
    )
    again = call(
        "POST",
        f"/api/leads/conflicts/{conflict['id']}/resolve",
        user=phone_b,
        body={"resolution": "keep_theirs"},
    )

    # Then the lead carries B's company at version 3, and the conflict is closed
    assert resolved.status == 200, resolved.body
    assert resolved.body["version"] == 3
    assert call("GET", f"/api/leads/{lead['id']}", user=phone_a).body["company"] == "Company B"
    assert again.status == 409
    assert call("GET", "/api/leads/conflicts", user=phone_b).body["items"] == []


def test_the_changes_feed_pages_with_its_cursor(world: World) -> None:
    member = world.a.user("member")
    ids = [_lead(member, full_name=f"Feed {n}")["id"] for n in range(3)]

    first = call("GET", "/api/leads/changes", user=member, query="limit=2")
    rest = call(
        "GET", "/api/leads/changes", user=member, query=f"limit=2&cursor={first.body['cursor']}"
    )
    tail = call("GET", "/api/leads/changes", user=member, query=f"cursor={rest.body['cursor']}")

    assert first.body["has_more"] is True
    assert [c["id"] for c in first.body["changes"] + rest.body["changes"]] == ids
    assert tail.body["changes"] == []
    assert call("GET", "/api/leads/changes", user=member, query="cursor=%%%").status == 400


def test_a_batch_over_1000_mutations_is_refused(world: World) -> None:
    mutation = {"op": "delete", "id": str(uuid.uuid4())}
    too_many = [mutation | {"client_mutation_id": str(n)} for n in range(1001)]

    refused = _push(world.a.user("member"), "phone", *too_many)

    assert refused.status == 422


def test_consent_is_recorded_and_withdrawn_with_its_proof(world: World, owner_conn: Conn) -> None:
    member = world.a.user("member")
    lead = _lead(member, full_name="Elisa Prado", email="elisa@example.com", legal_basis="consent")
    path = f"/api/leads/{lead['id']}/consents"

    granted = call("POST", path, user=member, body={
        "action": "granted", "channel": "form", "purposes": ["marketing"],
        "text_version": "v3", "ip": "203.0.113.7",
    })  # fmt: skip
    incomplete = call("POST", path, user=member, body={"action": "granted", "channel": "form"})
    withdrawn = call("POST", path, user=member, body={"action": "withdrawn", "channel": "email"})

    assert granted.status == 201, granted.body
    assert granted.body["purposes"] == ["marketing"]
    assert incomplete.status == 422
    assert withdrawn.status == 201
    row = owner_conn.execute(
        "SELECT consent_status FROM nigredo_leads.leads WHERE id = %s", (lead["id"],)
    ).fetchone()
    assert row is not None
    assert row["consent_status"] == "withdrawn"
    assert "203.0.113.7" not in repr(
        owner_conn.execute("SELECT * FROM nigredo_leads.consent_events").fetchall()
    )
    missing = call("POST", f"/api/leads/{uuid.uuid4()}/consents", user=member, body={
        "action": "withdrawn", "channel": "email"})  # fmt: skip
    assert missing.status == 404


def test_an_access_request_exports_everything_and_is_tracked_against_the_deadline(
    world: World,
) -> None:
    admin = world.a.user("admin")
    lead = _lead(admin, full_name="Fábio Gomes", email="fabio@example.com")

    access = call(
        "POST", "/api/leads/dsr", user=admin, body={"lead_id": lead["id"], "kind": "access"}
    )

    assert access.status == 201, access.body
    assert access.body["export"]["lead"]["email"] == "fabio@example.com"
    request = access.body["request"]
    assert (request["kind"], request["status"]) == ("access", "completed")
    listed = call("GET", "/api/leads/dsr", user=admin).body["items"]
    assert [r["id"] for r in listed] == [request["id"]]
    one = call("GET", f"/api/leads/dsr/{request['id']}", user=admin)
    assert one.body["due_at"] == request["due_at"]
    assert call("GET", f"/api/leads/dsr/{uuid.uuid4()}", user=admin).status == 404
    unknown = call(
        "POST", "/api/leads/dsr", user=admin, body={"lead_id": str(uuid.uuid4()), "kind": "access"}
    )
    assert unknown.status == 404


def test_a_correction_request_changes_personal_fields_only(world: World) -> None:
    admin = world.a.user("admin")
    lead = _lead(admin, full_name="Gabi Nunes", email="gabi@example.com")

    corrected = call("POST", "/api/leads/dsr", user=admin, body={
        "lead_id": lead["id"], "kind": "correction", "changes": {"full_name": "Gabriela Nunes"},
    })  # fmt: skip
    pipeline = call("POST", "/api/leads/dsr", user=admin, body={
        "lead_id": lead["id"], "kind": "correction", "changes": {"status": "won"},
    })  # fmt: skip

    assert corrected.status == 201, corrected.body
    assert call("GET", f"/api/leads/{lead['id']}", user=admin).body["full_name"] == "Gabriela Nunes"
    assert pipeline.status == 422


def _tables(conn: Conn) -> list[str]:
    return [
        row["table_name"]
        for row in conn.execute(
            """
            SELECT table_name FROM information_schema.tables
            WHERE table_schema = 'nigredo_leads' AND table_type = 'BASE TABLE'
            """
        ).fetchall()
    ]


def test_erasure_through_the_route_leaves_no_personal_data_and_the_chain_verifies(
    world: World, owner_conn: Conn
) -> None:
    # Given a person with a lead, a consent, a conflict holding both versions, and another lead
    admin = world.a.user("admin")
    person = _lead(
        admin,
        full_name="Heloísa Quintanilha",
        email="heloisa.quintanilha@example.com",
        phone="+55 21 99876-5432",
        company="Quintanilha Consultoria",
        company_tax_id="11.222.333/0001-81",
    )
    other = _lead(admin, full_name="Someone Else", email="else@example.com")
    call("POST", f"/api/leads/{person['id']}/consents", user=admin, body={
        "action": "granted", "channel": "form", "purposes": ["marketing"],
        "text_version": "v1", "ip": "198.51.100.4",
    })  # fmt: skip
    base = {"full_name": person["full_name"], "email": person["email"]}
    for device in ("a", "b"):
        _push(admin, device, {
            "client_mutation_id": "m", "op": "update", "id": person["id"], "base_version": 2,
            "fields": base | {"job_title": f"title {device}"},
        })  # fmt: skip

    # When the admin carries out an erasure request
    erased = call(
        "POST", "/api/leads/dsr", user=admin, body={"lead_id": person["id"], "kind": "erasure"}
    )

    # Then no nigredo_leads table holds the person's data
    assert erased.status == 201, erased.body
    assert erased.body["request"]["status"] == "completed"
    needles = [
        "heloísa",
        "heloisa",
        "quintanilha",
        "99876",
        "98765432",
        "11222333000181",
        "198.51.100.4",
    ]
    for table in _tables(owner_conn):
        rows = owner_conn.execute(
            psycopg.sql.SQL("SELECT to_jsonb(t)::text AS row FROM nigredo_leads.{} AS t").format(
                psycopg.sql.Identifier(table)
            )
        ).fetchall()
        text = " ".join(r["row"] for r in rows).lower()
        assert not [n for n in needles if n in text], table
    # nor the audit log or the outbox
    for table in ("alquimista_platform.audit_logs", "alquimista_platform.domain_outbox"):
        dump = owner_conn.execute(
            psycopg.sql.SQL(
                "SELECT coalesce(string_agg(to_jsonb(t)::text, ' '), '') AS d FROM {} AS t"
            ).format(psycopg.sql.SQL(table))
        ).fetchone()
        assert dump is not None
        assert not [n for n in needles if n in dump["d"].lower()], table
    # the other lead is untouched, the person cannot be created again, and the chain verifies
    assert call("GET", f"/api/leads/{other['id']}", user=admin).body["email"] == "else@example.com"
    again = _create(admin, full_name="H. Q.", email="heloisa.quintanilha@example.com")
    assert (again.status, again.body["error"]["code"]) == (409, "lead_suppressed")
    verify = call("GET", "/api/audit/verify", user=admin)
    assert verify.status == 200, verify.body
    assert verify.body["ok"] is True
    assert verify.body["checked"] >= 6  # creates, consent, sync batches, erasure


def test_the_processing_record_lists_purposes_bases_and_what_the_tenant_uses(world: World) -> None:
    admin = world.a.user("admin")
    lead = _lead(admin, full_name="Ivo", legal_basis="consent")
    call("POST", f"/api/leads/{lead['id']}/consents", user=admin, body={
        "action": "granted", "channel": "form", "purposes": ["newsletter"], "text_version": "v1",
    })  # fmt: skip

    record = call("GET", "/api/leads/processing-record", user=admin)

    assert record.status == 200, record.body
    assert record.body["controller_tenant_id"] == str(world.a.id)
    assert record.body["legal_bases_in_use"] == {"consent": 1}
    assert record.body["consent_purposes_in_use"] == ["newsletter"]
    assert all(a["retention"] and a["recipients"] for a in record.body["activities"])


def test_metrics_read_the_daily_rollup_and_refuse_a_backward_range(world: World) -> None:
    viewer = world.a.user("viewer")

    empty = call("GET", "/api/leads/metrics", user=viewer)
    backward = call("GET", "/api/leads/metrics", user=viewer, query="from=2026-02-01&to=2026-01-01")

    assert (empty.status, empty.body["items"]) == (200, [])
    assert backward.status == 422


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/leads/{id}", None),
        ("PATCH", "/api/leads/{id}", {"score": 1}),
        ("DELETE", "/api/leads/{id}", None),
        ("POST", "/api/leads/{id}/consents", {"action": "withdrawn", "channel": "email"}),
    ],
)
def test_another_tenants_lead_is_not_found(world: World, method: str, path: str, body: Any) -> None:
    lead = _lead(world.a.user("admin"), full_name="Private")

    result = call(
        method,
        path.format(id=lead["id"]),
        user=world.b.user("admin"),
        body=body,
        headers={"If-Match": '"1"'},
    )

    assert result.status == 404
    assert call("GET", f"/api/leads/{lead['id']}", user=world.a.user("admin")).body["version"] == 1


def test_another_tenants_requests_conflicts_and_feed_are_invisible(
    world: World, lambda_env: LocalResources
) -> None:
    a, b = world.a.user("admin"), world.b.user("admin")
    lead = _lead(a, full_name="Jade", email="jade@example.com")
    request = call("POST", "/api/leads/dsr", user=a, body={"lead_id": lead["id"], "kind": "access"})
    _push(a, "x", {"client_mutation_id": "1", "op": "update", "id": lead["id"], "base_version": 9,
                   "fields": {"full_name": "Jade"}})  # fmt: skip
    [conflict] = call("GET", "/api/leads/conflicts", user=a).body["items"]

    assert call("GET", "/api/leads/changes", user=b).body["changes"] == []
    assert call("GET", "/api/leads/conflicts", user=b).body["items"] == []
    assert call("GET", "/api/leads/dsr", user=b).body["items"] == []
    assert call("GET", f"/api/leads/dsr/{request.body['request']['id']}", user=b).status == 404
    assert (
        call(
            "POST", "/api/leads/dsr", user=b, body={"lead_id": lead["id"], "kind": "erasure"}
        ).status
        == 404
    )
    resolve = call("POST", f"/api/leads/conflicts/{conflict['id']}/resolve", user=b,
                   body={"resolution": "keep_theirs"})  # fmt: skip
    assert resolve.status == 404
    assert call("GET", "/api/leads/processing-record", user=b).body["legal_bases_in_use"] == {}
    pushed = _push(b, "x", {"client_mutation_id": "1", "op": "update", "id": lead["id"],
                            "base_version": 1, "fields": {"full_name": "Hijack"}})  # fmt: skip
    assert pushed.body["results"][0]["outcome"] == "rejected"
    assert call("GET", f"/api/leads/{lead['id']}", user=a).body["full_name"] == "Jade"
