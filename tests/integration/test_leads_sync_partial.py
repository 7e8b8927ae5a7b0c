"""Partial updates through the batched push (POST /api/leads/sync), on the real PostgreSQL: an
update writes only the fields it sends, as PATCH does (an offline client sends what it changed);
an explicit null clears a nullable field and is refused for one that is not; identifiers are
normalised and checked for duplicates only when sent; a stale partial update's conflict holds
only the fields sent, so keep_mine writes only those; another tenant's ids stay out of reach."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tests.integration.conftest import World
from tests.support.factories import TestUser
from tests.support.handlers import HandlerResult, call

AT = datetime(2031, 5, 6, 13, 0, tzinfo=UTC)
IMPORTED = {
    "full_name": "Lia Souza",
    "email": "Lia@Example.com",
    "phone": "(11) 91234-5678",
    "job_title": "CFO",
    "tags": ["vip", "sp"],
    "source": "import",
    "status": "contacted",
    "legal_basis": "consent",
}


def _push(user: TestUser, *mutations: dict[str, Any]) -> HandlerResult:
    return call(
        "POST", "/api/leads/sync", user=user, body={"device_id": "phone", "mutations": mutations}
    )


def _update(
    cmid: str, entity_id: Any, base: int, entity: Any = "lead", **fields: Any
) -> dict[str, Any]:
    return {
        "client_mutation_id": cmid,
        "entity": entity,
        "op": "update",
        "id": str(entity_id),
        "base_version": base,
        "fields": fields,
    }


def _results(result: HandlerResult) -> list[tuple[str, str | None, int | None]]:
    assert result.status == 200, result.body
    return [(r["outcome"], r["reason"], r["version"]) for r in result.body["results"]]


def _lead(user: TestUser, **fields: Any) -> dict[str, Any]:
    created = call("POST", "/api/leads", user=user, body=IMPORTED | fields)
    assert created.status == 201, created.body
    return dict(created.body)


def _read(user: TestUser, lead_id: Any) -> dict[str, Any]:
    read = call("GET", f"/api/leads/{lead_id}", user=user)
    assert read.status == 200, read.body
    return dict(read.body)


def _unchanged(before: dict[str, Any], after: dict[str, Any], *changed: str) -> dict[str, Any]:
    """The fields that differ although the update did not send them."""
    volatile = {"version", "updated_at", *changed}
    return {k: (before[k], after[k]) for k in before if k not in volatile and before[k] != after[k]}


def test_a_partial_lead_update_changes_only_the_fields_sent(world: World) -> None:
    # Given an imported lead with name, e-mail, phone, tags and source=import
    member = world.a.user("member")
    before = _lead(member)

    # When an offline client pushes an update of its company and score only
    pushed = _push(member, _update("1", before["id"], 1, company="X", score=40))

    # Then it is applied and every field it did not send is kept
    assert _results(pushed) == [("applied", None, 2)]
    after = _read(member, before["id"])
    assert (after["company"], after["score"], after["version"]) == ("X", 40, 2)
    assert _unchanged(before, after, "company", "score") == {}
    assert (after["email_normalized"], after["phone_e164"]) == ("lia@example.com", "+5511912345678")


def test_an_explicit_null_clears_a_nullable_field_and_is_refused_for_one_that_is_not(
    world: World,
) -> None:
    # Given a lead with a job title and a phone
    member = world.a.user("member")
    before = _lead(member)

    # When a client clears the job title and the phone
    pushed = _push(member, _update("1", before["id"], 1, job_title=None, phone=None))

    # Then both are cleared (the phone's normalised form too) and nothing else changes
    assert _results(pushed) == [("applied", None, 2)]
    after = _read(member, before["id"])
    assert (after["job_title"], after["phone"], after["phone_e164"]) == (None, None, None)
    assert _unchanged(before, after, "job_title", "phone", "phone_e164") == {}

    # and a null for a field that has no "empty" (status, tags, source) is a 422 that applies
    # nothing
    for field in ("status", "tags", "source", "legal_basis"):
        refused = _push(member, _update(f"n-{field}", before["id"], 2, **{field: None}))
        assert refused.status == 422, (field, refused.body)
    assert _read(member, before["id"])["version"] == 2


def test_identifiers_are_normalised_and_checked_for_duplicates_only_when_sent(
    world: World,
) -> None:
    # Given two leads, one holding an e-mail
    member = world.a.user("member")
    first = _lead(member)
    second = _lead(member, email="rui@example.com", phone=None, company_tax_id=None)

    # When one batch renames the second (identifiers not sent), then gives it the first's e-mail,
    # then gives it an invalid phone
    pushed = _push(
        member,
        _update("1", second["id"], 1, full_name="Rui"),
        _update("2", second["id"], 2, email="LIA@example.com"),
        _update("3", second["id"], 2, phone="123"),
    )

    # Then the rename applies without touching its e-mail; the duplicate and the bad phone are
    # rejected
    assert _results(pushed) == [
        ("applied", None, 2),
        ("rejected", "duplicate_lead", None),
        ("rejected", "invalid_lead", None),
    ]
    after = _read(member, second["id"])
    assert (after["full_name"], after["email_normalized"]) == ("Rui", "rui@example.com")
    assert _read(member, first["id"])["version"] == 1


def test_a_batch_of_partial_updates_of_different_fields_on_different_leads(world: World) -> None:
    # Given three leads
    member = world.a.user("member")
    leads = [
        _lead(member, email=f"p{i}@example.com", phone=None, full_name=f"P{i}") for i in range(3)
    ]

    # When one batch changes a different field on each
    pushed = _push(
        member,
        _update("1", leads[0]["id"], 1, tags=["hot"], company_tax_id="11.222.333/0001-81"),
        _update("2", leads[1]["id"], 1, status="qualified", email="novo@example.com"),
        _update("3", leads[2]["id"], 1, full_name="Renamed", job_title=None),
    )

    # Then each lead changes only in what was sent to it
    assert _results(pushed) == [("applied", None, 2)] * 3
    after = [_read(member, lead["id"]) for lead in leads]
    assert (after[0]["tags"], after[0]["company_tax_id"]) == (["hot"], "11222333000181")
    assert _unchanged(leads[0], after[0], "tags", "company_tax_id") == {}
    assert (after[1]["status"], after[1]["email_normalized"]) == ("qualified", "novo@example.com")
    assert _unchanged(leads[1], after[1], "status", "email", "email_normalized") == {}
    assert (after[2]["full_name"], after[2]["job_title"]) == ("Renamed", None)
    assert _unchanged(leads[2], after[2], "full_name", "job_title") == {}


def test_a_stale_partial_update_conflict_holds_only_the_fields_sent(world: World) -> None:
    # Given a lead another client has since renamed (version 2)
    member = world.a.user("member")
    before = _lead(member)
    assert _results(_push(member, _update("1", before["id"], 1, full_name="Lia S.")))[0][0] == (
        "applied"
    )

    # When a client that read version 1 pushes a score change
    pushed = _push(member, _update("2", before["id"], 1, score=70))

    # Then it is an update/update conflict whose "mine" is the score alone, beside the server's
    # whole row
    assert _results(pushed) == [("conflict", "update_update", 2)]
    conflict = call("GET", "/api/leads/conflicts", user=member).body["items"][0]
    assert conflict["mine"] == {"score": 70}
    assert conflict["theirs"]["full_name"] == "Lia S."

    # and keep_mine writes the score over the server's row, keeping the rename
    resolved = call(
        "POST",
        f"/api/leads/conflicts/{conflict['id']}/resolve",
        user=member,
        body={"resolution": "keep_mine"},
    )
    assert resolved.status == 200, resolved.body
    after = _read(member, before["id"])
    assert (after["full_name"], after["score"], after["version"]) == ("Lia S.", 70, 3)
    assert _unchanged(before, after, "full_name", "score") == {}


def test_partial_campaign_and_meeting_updates_change_only_the_fields_sent(world: World) -> None:
    # Given an active campaign with a description and a 45-minute meeting
    member = world.a.user("member")
    campaign = call(
        "POST",
        "/api/leads/campaigns",
        user=member,
        body={"name": "Sul", "channel": "email", "description": "Q3 push"},
    ).body["id"]
    activated = call(
        "POST",
        f"/api/leads/campaigns/{campaign}/status",
        user=member,
        headers={"If-Match": '"1"'},
        body={"status": "active"},
    )
    assert activated.status == 200, activated.body
    lead = _lead(member)["id"]
    meeting = call(
        "POST",
        f"/api/leads/{lead}/meetings",
        user=member,
        body={"scheduled_for": AT.isoformat(), "duration_minutes": 45},
    ).body["id"]

    # When a client renames the campaign and moves the meeting (nothing else sent)
    pushed = _push(
        member,
        _update("1", campaign, 2, entity="campaign", name="Sul 2"),
        _update(
            "2", meeting, 1, entity="meeting", scheduled_for=(AT + timedelta(hours=2)).isoformat()
        ),
    )

    # Then the campaign keeps its channel, description and status, the meeting its length
    assert _results(pushed) == [("applied", None, 3), ("applied", None, 2)]
    read = call("GET", f"/api/leads/campaigns/{campaign}", user=member).body["campaign"]
    assert (read["name"], read["channel"], read["description"], read["status"]) == (
        "Sul 2",
        "email",
        "Q3 push",
        "active",
    )
    moved = call("GET", f"/api/leads/meetings/{meeting}", user=member).body
    assert (moved["scheduled_for_local"], moved["duration_minutes"]) == (
        "2031-05-06T12:00:00-03:00",
        45,
    )

    # and a null for a campaign's name or a meeting's time, or a create without them, is a 422
    for bad in (
        _update("n1", campaign, 3, entity="campaign", name=None),
        _update("n2", meeting, 2, entity="meeting", scheduled_for=None),
        {"client_mutation_id": "n3", "entity": "campaign", "op": "create",
         "id": str(uuid.uuid4()), "fields": {"name": "Norte"}},
        {"client_mutation_id": "n4", "entity": "meeting", "op": "create",
         "id": str(uuid.uuid4()), "fields": {"lead_id": lead}},
    ):  # fmt: skip
        assert _push(member, bad).status == 422, bad


def test_a_partial_update_of_another_tenants_rows_is_not_found_and_changes_nothing(
    world: World,
) -> None:
    # Given tenant A's lead and campaign
    a, b = world.a.user("member"), world.b.user("admin")
    lead = _lead(a)
    campaign = call(
        "POST", "/api/leads/campaigns", user=a, body={"name": "Sul", "channel": "email"}
    ).body["id"]

    # When tenant B pushes partial updates naming them
    pushed = _push(
        b,
        _update("1", lead["id"], 1, company="Hijacked"),
        _update("2", campaign, 1, entity="campaign", description="Hijacked"),
    )

    # Then both are not_found and A's rows are untouched
    assert _results(pushed) == [("rejected", "not_found", None), ("rejected", "not_found", None)]
    assert _unchanged(lead, _read(a, lead["id"])) == {}
    kept = call("GET", f"/api/leads/campaigns/{campaign}", user=a).body["campaign"]
    assert (kept["description"], kept["version"]) == ("", 1)


def test_last_writer_wins_writes_only_the_fields_a_stale_update_sent(
    world: World, owner: psycopg.Connection[dict[str, Any]]
) -> None:
    # Given a tenant that chose last-writer-wins and a lead another client renamed (version 2)
    member = world.a.user("member")
    owner.execute(
        """
        INSERT INTO nigredo_leads.sync_settings (tenant_id, last_writer_wins) VALUES (%s, true)
        ON CONFLICT (tenant_id) DO UPDATE SET last_writer_wins = true
        """,
        (world.a.id,),
    )
    before = _lead(member)
    assert _results(_push(member, _update("1", before["id"], 1, full_name="Lia S.")))[0][0] == (
        "applied"
    )

    # When a client that read version 1 pushes a score change
    pushed = _push(member, _update("2", before["id"], 1, score=70))

    # Then it is applied over the newer row without undoing the rename
    assert _results(pushed) == [("applied", None, 3)]
    after = _read(member, before["id"])
    assert (after["full_name"], after["score"]) == ("Lia S.", 70)
    assert _unchanged(before, after, "full_name", "score") == {}
