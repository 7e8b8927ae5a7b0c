"""Campaigns, timelines and meetings through the leads handler."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.conftest import World
from tests.support.factories import TestUser
from tests.support.handlers import call


def _lead(user: TestUser, **fields: Any) -> str:
    result = call("POST", "/api/leads", user=user, body={"full_name": "Lead", **fields})
    assert result.status == 201, result.body
    return str(result.body["id"])


def test_a_campaign_is_created_counted_moved_and_deleted_with_versions(world: World) -> None:
    member = world.a.user("member")
    created = call(
        "POST", "/api/leads/campaigns", user=member, body={"name": "Q3", "channel": "email"}
    )
    assert (created.status, created.headers["ETag"]) == (201, '"1"')
    campaign_id = created.body["id"]
    _lead(member, campanha_id=campaign_id)
    _lead(member, campanha_id=campaign_id, status="qualified")

    taken = call(
        "POST", "/api/leads/campaigns", user=member, body={"name": "Q3", "channel": "phone"}
    )
    numbers = call("GET", f"/api/leads/campaigns/{campaign_id}", user=member)
    attached = call("GET", "/api/leads", user=member, query=f"campanha_id={campaign_id}")
    active = call(
        "POST",
        f"/api/leads/campaigns/{campaign_id}/status",
        user=member,
        body={"status": "active"},
        headers={"If-Match": '"1"'},
    )
    stale = call(
        "DELETE", f"/api/leads/campaigns/{campaign_id}", user=member, headers={"If-Match": '"1"'}
    )
    deleted = call(
        "DELETE", f"/api/leads/campaigns/{campaign_id}", user=member, headers={"If-Match": '"2"'}
    )

    assert (taken.status, taken.body["error"]["code"]) == (409, "campaign_name_taken")
    assert numbers.body["leads_by_status"] == {"new": 1, "qualified": 1}
    assert numbers.body["leads"] == 2
    assert len(attached.body["items"]) == 2
    assert (active.status, active.body["status"], active.headers["ETag"]) == (200, "active", '"2"')
    assert (stale.status, stale.body["error"]["details"]) == (412, [{"current_version": 2}])
    assert deleted.status == 200
    assert call("GET", f"/api/leads/campaigns/{campaign_id}", user=member).status == 404
    assert call("GET", "/api/leads/campaigns", user=member).body["items"] == []


def test_the_timeline_is_appended_and_read_newest_first(world: World) -> None:
    member = world.a.user("member")
    lead_id = _lead(member)
    path = f"/api/leads/{lead_id}/interactions"
    early = (datetime.now(UTC) - timedelta(days=1)).isoformat()

    call_at = {"channel": "phone", "direction": "outbound", "kind": "call", "occurred_at": early}
    first = call("POST", path, user=member, body=call_at)
    second = call("POST", path, user=member, body={
        "channel": "whatsapp", "direction": "inbound", "content": "Tenho interesse"})  # fmt: skip
    bad = call("POST", path, user=member, body={"channel": "fax", "direction": "inbound"})

    assert (first.status, second.status, bad.status) == (201, 201, 422)
    timeline = call("GET", path, user=world.a.user("viewer")).body["items"]
    assert [i["id"] for i in timeline] == [second.body["id"], first.body["id"]]
    missing = f"/api/leads/{uuid.uuid4()}/interactions"
    assert call("GET", missing, user=member).status == 404
    assert (
        call(
            "POST", missing, user=member, body={"channel": "phone", "direction": "outbound"}
        ).status
        == 404
    )


def test_meetings_refuse_overlaps_per_owner_and_show_the_tenant_time_zone(world: World) -> None:
    member = world.a.user("member")
    lead_id = _lead(member)
    at = datetime(2031, 3, 10, 13, 0, tzinfo=UTC)

    first = call("POST", f"/api/leads/{lead_id}/meetings", user=member, body={
        "scheduled_for": at.isoformat(), "duration_minutes": 60})  # fmt: skip
    overlapping = call("POST", f"/api/leads/{lead_id}/meetings", user=member, body={
        "scheduled_for": (at + timedelta(minutes=30)).isoformat()})  # fmt: skip
    back_to_back = call("POST", f"/api/leads/{lead_id}/meetings", user=member, body={
        "scheduled_for": (at + timedelta(minutes=60)).isoformat()})  # fmt: skip

    assert first.status == 201, first.body
    assert first.body["time_zone"] == "America/Sao_Paulo"
    assert first.body["scheduled_for_local"] == "2031-03-10T10:00:00-03:00"
    assert (overlapping.status, overlapping.body["error"]["code"]) == (409, "meeting_overlaps")
    assert back_to_back.status == 201
    meeting = first.body["id"]

    earlier = {"scheduled_for": (at - timedelta(hours=2)).isoformat()}
    moved = call(
        "POST",
        f"/api/leads/meetings/{meeting}/reschedule",
        user=member,
        body=earlier,
        headers={"If-Match": '"1"'},
    )
    no_precondition = call("POST", f"/api/leads/meetings/{meeting}/cancel", user=member)
    canceled = call(
        "POST", f"/api/leads/meetings/{meeting}/cancel", user=member, headers={"If-Match": '"2"'}
    )
    again = call(
        "POST", f"/api/leads/meetings/{meeting}/complete", user=member, headers={"If-Match": '"3"'}
    )

    assert (moved.status, moved.body["version"]) == (200, 2)
    assert no_precondition.status == 428
    assert (canceled.status, canceled.body["status"]) == (200, "canceled")
    assert (again.status, again.body["error"]["code"]) == (409, "meeting_not_open")
    read = call("GET", f"/api/leads/meetings/{meeting}", user=member)
    assert (read.status, read.headers["ETag"]) == (200, '"3"')
    # the canceled meeting freed its slot
    freed = call("POST", f"/api/leads/{lead_id}/meetings", user=member, body={
        "scheduled_for": (at - timedelta(hours=2)).isoformat()})  # fmt: skip
    assert freed.status == 201
    assert call("GET", f"/api/leads/meetings/{uuid.uuid4()}", user=member).status == 404


def test_another_tenants_campaigns_timelines_and_meetings_are_not_found(world: World) -> None:
    a, b = world.a.user("member"), world.b.user("admin")
    campaign = call("POST", "/api/leads/campaigns", user=a, body={"name": "A", "channel": "email"})
    lead_id = _lead(a)
    meeting = call("POST", f"/api/leads/{lead_id}/meetings", user=a, body={
        "scheduled_for": "2031-01-01T12:00:00Z"})  # fmt: skip
    if_match = {"If-Match": '"1"'}

    assert call("GET", f"/api/leads/campaigns/{campaign.body['id']}", user=b).status == 404
    assert call("GET", "/api/leads/campaigns", user=b).body["items"] == []
    assert call("POST", f"/api/leads/campaigns/{campaign.body['id']}/status", user=b,
                body={"status": "active"}, headers=if_match).status == 404  # fmt: skip
    assert call("GET", f"/api/leads/{lead_id}/interactions", user=b).status == 404
    assert call("GET", f"/api/leads/meetings/{meeting.body['id']}", user=b).status == 404
    assert call("POST", f"/api/leads/meetings/{meeting.body['id']}/cancel", user=b,
                headers=if_match).status == 404  # fmt: skip
    assert (
        call("GET", f"/api/leads/meetings/{meeting.body['id']}", user=a).body["status"]
        == "scheduled"
    )
