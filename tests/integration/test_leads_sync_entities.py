"""The batched push of campaigns, interactions and meetings through the leads handler, on the real
PostgreSQL: a mixed batch applied in order in one transaction, the append-only timeline, the
owner's no-overlap rule per mutation, conflicts stored and resolved for every kind, last-writer-
wins only where the tenant chose it, a refused request that applies nothing, and another
tenant's rows out of reach."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tests.integration.conftest import World
from tests.support.factories import TestUser
from tests.support.handlers import HandlerResult, call

Conn = psycopg.Connection[dict[str, Any]]
AT = datetime(2031, 5, 6, 13, 0, tzinfo=UTC)


def _push(user: TestUser, *mutations: dict[str, Any], device: str = "phone") -> HandlerResult:
    return call(
        "POST",
        "/api/leads/sync",
        user=user,
        body={"device_id": device, "mutations": list(mutations)},
    )


def _results(result: HandlerResult) -> list[tuple[str, str | None]]:
    assert result.status == 200, result.body
    return [(r["outcome"], r["reason"]) for r in result.body["results"]]


def _m(
    cmid: str, entity: str, op: str, entity_id: Any, base: int | None = None, /, **fields: Any
) -> dict[str, Any]:
    mutation: dict[str, Any] = {
        "client_mutation_id": cmid,
        "entity": entity,
        "op": op,
        "id": str(entity_id),
    }
    if base is not None:
        mutation["base_version"] = base
    if fields:
        mutation["fields"] = fields
    return mutation


def _at(minutes: int) -> str:
    return (AT + timedelta(minutes=minutes)).isoformat()


def _lead(user: TestUser, **fields: Any) -> str:
    created = call("POST", "/api/leads", user=user, body={"full_name": "Lia"} | fields)
    assert created.status == 201, created.body
    return str(created.body["id"])


def _events(owner: Conn, tenant_id: uuid.UUID) -> list[tuple[str, str]]:
    rows = owner.execute(
        """
        SELECT event_type, aggregate_id FROM alquimista_platform.domain_outbox
        WHERE tenant_id = %s ORDER BY created_at, seq
        """,
        (tenant_id,),
    ).fetchall()
    return [(row["event_type"], row["aggregate_id"]) for row in rows]


def _audited(owner: Conn, tenant_id: uuid.UUID) -> list[tuple[str, str]]:
    rows = owner.execute(
        """
        SELECT action, resource_id FROM alquimista_platform.audit_logs
        WHERE tenant_id = %s ORDER BY seq
        """,
        (tenant_id,),
    ).fetchall()
    return [(row["action"], row["resource_id"]) for row in rows]


def test_a_mixed_batch_applies_campaigns_leads_interactions_and_meetings_in_order(
    world: World, owner: Conn
) -> None:
    # Given a client that made, offline, a campaign, a lead in it, a call and a meeting
    member = world.a.user("member")
    campaign, lead, note, meeting = (uuid.uuid4() for _ in range(4))

    # When it pushes them with later edits of the campaign and the meeting in one batch
    pushed = _push(
        member,
        _m("1", "campaign", "create", campaign, name="Q3", channel="email"),
        {"client_mutation_id": "2", "op": "create", "id": str(lead),
         "fields": {"full_name": "Rui", "campanha_id": str(campaign)}},
        _m("3", "interaction", "create", note, lead_id=str(lead), channel="phone",
           direction="outbound", kind="call"),
        _m("4", "meeting", "create", meeting, lead_id=str(lead), scheduled_for=_at(0)),
        _m("5", "campaign", "update", campaign, 1, name="Q3 Sul", channel="email",
           status="active"),
        _m("6", "meeting", "update", meeting, 1, scheduled_for=_at(60), duration_minutes=45),
    )  # fmt: skip

    # Then each is applied in order, with its version
    assert pushed.status == 200, pushed.body
    assert [(r["outcome"], r["version"]) for r in pushed.body["results"]] == [
        ("applied", 1), ("applied", 1), ("applied", 1), ("applied", 1), ("applied", 2),
        ("applied", 2),
    ]  # fmt: skip
    read = call("GET", f"/api/leads/campaigns/{campaign}", user=member)
    assert (read.body["campaign"]["name"], read.body["campaign"]["status"]) == ("Q3 Sul", "active")
    assert read.body["leads"] == 1
    timeline = call("GET", f"/api/leads/{lead}/interactions", user=member).body["items"]
    assert [(i["id"], i["kind"]) for i in timeline] == [(str(note), "call")]
    moved = call("GET", f"/api/leads/meetings/{meeting}", user=member).body
    assert (moved["scheduled_for_local"], moved["duration_minutes"]) == (
        "2031-05-06T11:00:00-03:00",
        45,
    )
    assert moved["owner_user_id"] == str(member.id)
    # and every applied campaign, interaction and meeting change is announced by the event its
    # single-entity route emits, each aggregate's in order; the push is one audit row (its
    # batch record), as a push of leads is
    expected = [
        ("campaign.created", str(campaign)),
        ("interaction.recorded", str(note)),
        ("meeting.scheduled", str(meeting)),
        ("campaign.updated", str(campaign)),
        ("meeting.rescheduled", str(meeting)),
    ]
    events = [e for e in _events(owner, world.a.id) if e[0] != "sync.batch_applied"]
    assert sorted(events) == sorted(expected)
    assert [e for e in events if e[1] == str(campaign)] == [expected[0], expected[3]]
    assert [e for e in events if e[1] == str(meeting)] == [expected[2], expected[4]]
    audited = [action for action, _ in _audited(owner, world.a.id)]
    assert audited.count("sync.batch_applied") == 1
    assert not {event for event, _ in expected} & set(audited)
    # and the changes feed carries them for the other devices
    feed = call("GET", "/api/leads/changes", user=member).body["changes"]
    assert {(c["entity"], c["id"]) for c in feed} == {
        ("campaign", str(campaign)), ("lead", str(lead)), ("interaction", str(note)),
        ("meeting", str(meeting)),
    }  # fmt: skip

    # When the same batch is pushed again
    replay = _push(member, *[_m(str(n), "campaign", "delete", campaign, 9) for n in (1, 5)])

    # Then the stored results come back and nothing changes
    assert [r["replayed"] for r in replay.body["results"]] == [True, True]
    assert call("GET", f"/api/leads/campaigns/{campaign}", user=member).status == 200


def test_interactions_are_append_only_and_need_a_live_lead_of_the_tenant(world: World) -> None:
    member = world.a.user("member")
    lead = _lead(member)
    note = uuid.uuid4()
    fields = {"lead_id": lead, "channel": "email", "direction": "inbound"}

    pushed = _push(
        member,
        _m("a", "interaction", "create", note, **fields),
        _m("b", "interaction", "update", note, 1, **fields),
        _m("c", "interaction", "delete", note, 1),
        _m("d", "interaction", "create", uuid.uuid4(), **fields | {"lead_id": str(uuid.uuid4())}),
        _m("e", "interaction", "create", uuid.uuid4()),
        _m("f", "interaction", "create", note, **fields),
    )

    assert _results(pushed) == [
        ("applied", None),
        ("rejected", "interactions_are_append_only"),
        ("rejected", "interactions_are_append_only"),
        ("rejected", "lead_not_found"),
        ("rejected", "fields are required"),
        ("conflict", "create_create"),
    ]
    assert len(call("GET", f"/api/leads/{lead}/interactions", user=member).body["items"]) == 1


def test_meetings_keep_the_owners_no_overlap_rule_reported_per_mutation(world: World) -> None:
    # Given the member's meeting 13:00-14:00 booked through the route
    member = world.a.user("member")
    lead = _lead(member)
    booked = call("POST", f"/api/leads/{lead}/meetings", user=member, body={
        "scheduled_for": _at(0), "duration_minutes": 60})  # fmt: skip
    assert booked.status == 201, booked.body
    booked_id = booked.body["id"]
    later, clash, inside, stale = (uuid.uuid4() for _ in range(4))

    # When a push books around it, moves into it, cancels it and reuses its slot
    pushed = _push(
        member,
        _m("1", "meeting", "create", uuid.uuid4(), lead_id=lead, scheduled_for=_at(30)),
        _m("2", "meeting", "create", later, lead_id=lead, scheduled_for=_at(60)),
        _m("3", "meeting", "create", clash, lead_id=lead, scheduled_for=_at(70)),
        _m("4", "meeting", "update", later, 1, scheduled_for=_at(15)),
        _m("5", "meeting", "delete", booked_id, 1),
        _m("6", "meeting", "create", inside, lead_id=lead, scheduled_for=_at(0)),
        _m("7", "meeting", "delete", booked_id, 2),
        _m("8", "meeting", "update", later, 1, scheduled_for=_at(120)),
        _m("9", "meeting", "update", booked_id, 2, scheduled_for=_at(300)),
        _m("10", "meeting", "create", stale, scheduled_for=_at(600)),
    )

    # Then overlaps are refused one by one, in the batch's order, and the rest applied
    assert _results(pushed) == [
        ("rejected", "meeting_overlaps"),
        ("applied", None),
        ("rejected", "meeting_overlaps"),
        ("rejected", "meeting_overlaps"),
        ("applied", None),
        ("applied", None),
        ("applied", None),  # canceling a canceled meeting changes nothing
        ("applied", None),
        ("conflict", "update_delete"),
        ("rejected", "lead_id is required"),
    ]
    assert call("GET", f"/api/leads/meetings/{booked_id}", user=member).body["status"] == "canceled"
    moved = call("GET", f"/api/leads/meetings/{later}", user=member).body
    assert (moved["version"], moved["scheduled_for"][:16]) == (2, "2031-05-06T15:00")
    assert call("GET", f"/api/leads/meetings/{clash}", user=member).status == 404


def test_campaign_and_meeting_conflicts_are_stored_with_both_versions_and_resolved(
    world: World,
) -> None:
    # Given a campaign and a meeting another device changed after this one synced them
    member, other = world.a.user("member"), world.a.user("admin")
    made = call(
        "POST", "/api/leads/campaigns", user=member, body={"name": "Leste", "channel": "email"}
    )
    campaign = made.body["id"]
    lead = _lead(member)
    meeting = call("POST", f"/api/leads/{lead}/meetings", user=member, body={
        "scheduled_for": _at(0)}).body["id"]  # fmt: skip
    moved = _push(other, _m("o1", "campaign", "update", campaign, 1, name="Leste",
                            channel="email", status="active"),
                  _m("o2", "meeting", "update", meeting, 1, scheduled_for=_at(60)),
                  device="tablet")  # fmt: skip
    assert _results(moved) == [("applied", None), ("applied", None)]

    # When this device pushes its stale edits and a create of the same campaign name
    pushed = _push(
        member,
        _m(
            "1",
            "campaign",
            "update",
            campaign,
            1,
            name="Leste",
            channel="whatsapp",
            status="active",
        ),
        _m("2", "campaign", "create", uuid.uuid4(), name="Leste", channel="phone"),
        _m("3", "meeting", "update", meeting, 1, scheduled_for=_at(180)),
        _m("4", "meeting", "delete", meeting, 1),
    )

    # Then each is a conflict naming the server's row, stored with both versions
    assert _results(pushed) == [
        ("conflict", "update_update"),
        ("conflict", "create_create"),
        ("conflict", "update_update"),
        ("conflict", "update_delete"),
    ]
    assert [r["id"] for r in pushed.body["results"]] == [campaign, campaign, meeting, meeting]
    stored = {c["id"]: c for c in call("GET", "/api/leads/conflicts", user=member).body["items"]}
    ids = [r["conflict_id"] for r in pushed.body["results"]]
    assert (stored[ids[0]]["mine"]["channel"], stored[ids[0]]["theirs"]["status"]) == (
        "whatsapp",
        "active",
    )
    assert stored[ids[2]]["entity"] == "meeting"
    assert stored[ids[3]]["mine"] == {"deleted": True}

    def resolve(conflict_id: str, resolution: str, **merged: Any) -> HandlerResult:
        body: dict[str, Any] = {"resolution": resolution}
        if merged:
            body["merged"] = merged
        return call("POST", f"/api/leads/conflicts/{conflict_id}/resolve", user=member, body=body)

    # When they are resolved: mine, merged (a field that cannot be set refused), theirs, mine
    kept = resolve(ids[0], "keep_mine")
    refused = resolve(ids[1], "merged", name="Leste", tenant_id=str(uuid.uuid4()))
    merged = resolve(ids[1], "merged", description="both phones")
    moved_again = resolve(ids[2], "keep_theirs")
    canceled = resolve(ids[3], "keep_mine")

    assert (kept.status, kept.body["version"]) == (200, 3), kept.body
    assert refused.status == 422
    assert (merged.status, merged.body["version"]) == (200, 4), merged.body
    assert (moved_again.status, moved_again.body["version"]) == (200, 2)
    assert (canceled.status, canceled.body["version"]) == (200, 3), canceled.body
    campaign_now = call("GET", f"/api/leads/campaigns/{campaign}", user=member).body["campaign"]
    assert (campaign_now["channel"], campaign_now["status"], campaign_now["description"]) == (
        "whatsapp",
        "active",
        "both phones",
    )
    assert call("GET", f"/api/leads/meetings/{meeting}", user=member).body["status"] == "canceled"
    assert call("GET", "/api/leads/conflicts", user=member).body["items"] == []


def test_last_writer_wins_applies_stale_campaign_and_meeting_edits_only_where_chosen(
    world: World, owner: Conn
) -> None:
    member = world.a.user("member")
    campaign = call("POST", "/api/leads/campaigns", user=member, body={
        "name": "Norte", "channel": "email"}).body["id"]  # fmt: skip
    lead = _lead(member)
    meeting = call("POST", f"/api/leads/{lead}/meetings", user=member, body={
        "scheduled_for": _at(0)}).body["id"]  # fmt: skip
    stale = [
        _m("1", "campaign", "update", campaign, 7, name="Norte", channel="phone"),
        _m("2", "meeting", "update", meeting, 7, scheduled_for=_at(90)),
    ]
    assert _results(_push(member, *stale)) == [("conflict", "update_update")] * 2

    owner.execute(
        """
        INSERT INTO nigredo_leads.sync_settings (tenant_id, last_writer_wins) VALUES (%s, true)
        ON CONFLICT (tenant_id) DO UPDATE SET last_writer_wins = true
        """,
        (world.a.id,),
    )
    again = _push(member, *stale, device="other-phone")

    assert _results(again) == [("applied", None)] * 2
    assert (
        call("GET", f"/api/leads/campaigns/{campaign}", user=member).body["campaign"]["channel"]
        == "phone"
    )


def test_an_unknown_entity_or_op_is_422_and_applies_nothing(world: World, owner: Conn) -> None:
    member = world.a.user("member")
    good = _m("1", "campaign", "create", uuid.uuid4(), name="Oeste", channel="email")

    unknown_entity = _push(member, good, _m("2", "deal", "create", uuid.uuid4(), name="x"))
    unknown_op = _push(member, good, _m("2", "meeting", "cancel", uuid.uuid4()))
    wrong_fields = _push(member, good, _m("2", "campaign", "create", uuid.uuid4(), full_name="x"))

    for refused in (unknown_entity, unknown_op, wrong_fields):
        assert refused.status == 422, refused.body
    assert "deal" in str(unknown_entity.body)
    assert call("GET", "/api/leads/campaigns", user=member).body["items"] == []
    count = owner.execute(
        "SELECT count(*) AS n FROM nigredo_leads.sync_mutations WHERE tenant_id = %s",
        (world.a.id,),
    ).fetchone()
    assert count is not None
    assert count["n"] == 0
    # and the sync route's permission holds for every kind: a viewer pushes nothing
    assert _push(world.a.user("viewer"), good).status == 403


def test_a_push_cannot_touch_another_tenants_campaign_lead_or_meeting(world: World) -> None:
    # Given tenant A's campaign, lead and meeting
    a, b = world.a.user("member"), world.b.user("admin")
    campaign = call("POST", "/api/leads/campaigns", user=a, body={
        "name": "Sul", "channel": "email"}).body["id"]  # fmt: skip
    lead = _lead(a)
    meeting = call("POST", f"/api/leads/{lead}/meetings", user=a, body={
        "scheduled_for": _at(0)}).body["id"]  # fmt: skip

    # When tenant B pushes mutations naming them
    pushed = _push(
        b,
        _m("1", "campaign", "update", campaign, 1, name="Hijacked", channel="phone"),
        _m("2", "campaign", "delete", campaign, 1),
        _m("3", "campaign", "create", campaign, name="Sul", channel="email"),
        _m("4", "meeting", "delete", meeting, 1),
        _m("5", "meeting", "update", meeting, 1, scheduled_for=_at(60)),
        _m("6", "interaction", "create", uuid.uuid4(), lead_id=lead, channel="email",
           direction="outbound"),
        _m("7", "meeting", "create", uuid.uuid4(), lead_id=lead, scheduled_for=_at(0)),
        {"client_mutation_id": "8", "op": "create", "id": str(uuid.uuid4()),
         "fields": {"full_name": "Lu", "campanha_id": campaign}},
    )  # fmt: skip

    # Then each is refused as if the rows did not exist, and A's rows are untouched
    assert _results(pushed) == [
        ("rejected", "not_found"),
        ("rejected", "not_found"),
        ("rejected", "id_taken"),
        ("rejected", "not_found"),
        ("rejected", "not_found"),
        ("rejected", "lead_not_found"),
        ("rejected", "lead_not_found"),
        ("rejected", "campaign_not_found"),
    ]
    read = call("GET", f"/api/leads/campaigns/{campaign}", user=a).body["campaign"]
    assert (read["name"], read["version"]) == ("Sul", 1)
    kept = call("GET", f"/api/leads/meetings/{meeting}", user=a).body
    assert (kept["status"], kept["version"]) == ("scheduled", 1)
    assert call("GET", f"/api/leads/{lead}/interactions", user=a).body["items"] == []
    assert call("GET", "/api/leads/campaigns", user=b).body["items"] == []


def test_erasure_deletes_the_conflicts_of_the_persons_interactions_and_meetings(
    world: World,
) -> None:
    # Given conflicts holding the person's call notes and meeting, and one of another lead
    member, admin = world.a.user("member"), world.a.user("admin")
    person, other = _lead(member, full_name="Ana"), _lead(member, full_name="Bia")
    note = uuid.uuid4()
    call_ = {"channel": "phone", "direction": "inbound", "content": "Ana said..."}
    meeting = call("POST", f"/api/leads/{person}/meetings", user=member, body={
        "scheduled_for": _at(0)}).body["id"]  # fmt: skip
    kept = call("POST", f"/api/leads/{other}/meetings", user=member, body={
        "scheduled_for": _at(600)}).body["id"]  # fmt: skip
    pushed = _push(
        member,
        _m("1", "interaction", "create", note, lead_id=person, **call_),
        _m("2", "interaction", "create", note, lead_id=person, **call_),
        _m("3", "meeting", "update", meeting, 5, scheduled_for=_at(60)),
        _m("4", "meeting", "update", kept, 5, scheduled_for=_at(700)),
    )
    assert [o for o, _ in _results(pushed)] == ["applied", "conflict", "conflict", "conflict"]

    # When the person's data is erased
    erased = call("POST", "/api/leads/dsr", user=admin, body={"lead_id": person, "kind": "erasure"})

    # Then only the other lead's conflict is left
    assert erased.status in (200, 201), erased.body
    left = call("GET", "/api/leads/conflicts", user=member).body["items"]
    assert [c["entity_id"] for c in left] == [kept]
