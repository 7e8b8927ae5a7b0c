from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import boto3
import pytest

from lambdas.activity.consumer import lambda_handler as consume
from lambdas.activity.repository import ActivityFeedRepository
from lambdas.outbox.handler import lambda_handler as relay
from lambdas.outbox.repository import OutboxRelayRepository
from lambdas.shared.constants import resource_names
from scripts import outbox as outbox_cli
from scripts.devstack.aws_resources import LocalResources
from scripts.devstack.events import (
    drain_queue,
    relay_and_deliver,
    sqs_lambda_event,
    start_outbox_timer,
)
from tests.integration.conftest import World
from tests.support.database import TestDatabase
from tests.support.events import lambda_context
from tests.support.handlers import call
from tests.support.outbox import activated, deactivated, emit, runtime_database

NAMES = resource_names("dev")


def _queue_url() -> str:
    return str(boto3.client("sqs").get_queue_url(QueueName=NAMES.activity_queue)["QueueUrl"])


def _relay() -> dict[str, Any]:
    report: dict[str, Any] = relay({}, lambda_context("outbox"))
    return report


def _consume_all() -> int:
    return drain_queue(_queue_url(), lambda event: consume(event, lambda_context("activity")))


def _feed(resources: LocalResources) -> ActivityFeedRepository:
    return ActivityFeedRepository(boto3.client("dynamodb"), table=resources.activity_table)


def _feed_of(world_tenant_user) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query = "limit=2"
    while True:
        page = call("GET", "/api/activity", user=world_tenant_user, query=query)
        assert page.status == 200, page.body
        items += page.body["items"]
        if page.body["next_cursor"] is None:
            return items
        query = f"limit=2&cursor={page.body['next_cursor']}"


def test_events_reach_their_tenants_feed_newest_first_and_no_other(
    world: World, db: TestDatabase
) -> None:
    # Given events of two tenants and one platform event, committed
    database = runtime_database(db)
    agent = uuid.uuid4()
    a_ids = emit(database, world.a.id, activated(agent))
    a_ids += emit(database, world.a.id, deactivated(agent), activated())
    b_ids = emit(database, world.b.id, activated())
    request = uuid.uuid4()
    emit(
        database,
        None,
        (
            "commercial_request.created",
            "commercial_request",
            str(request),
            {"commercial_request_id": str(request), "plan_id": None, "subnucleo_ids": []},
        ),
    )

    # When the relay runs and the queue is drained into the consumer
    report = _relay()
    processed = _consume_all()

    # Then
    assert report["published"] == 5
    assert report["backlog"]["pending"] == 0
    assert processed == 5
    a_feed = _feed_of(world.a.user("member"))
    b_feed = _feed_of(world.b.user("admin"))
    assert [uuid.UUID(i["event_id"]) for i in a_feed] == list(reversed(a_ids))
    assert [uuid.UUID(i["event_id"]) for i in b_feed] == b_ids
    first = a_feed[-1]
    assert first["type"] == "agent.activated"
    assert first["aggregate"] == {"type": "agent", "id": str(agent), "seq": 1}
    assert a_feed[-2]["aggregate"]["seq"] == 2
    assert first["data"]["agent_id"] == str(agent)


def test_a_viewer_may_not_read_the_feed_and_a_stranger_is_refused(world: World) -> None:
    viewer = call("GET", "/api/activity", user=world.a.user("viewer"))
    stranger = call(
        "GET",
        "/api/activity",
        user=world.b.user("admin"),
        headers={"X-Tenant-Id": str(world.a.id)},
    )

    assert viewer.status == 403
    assert stranger.status == 403


@pytest.mark.parametrize("cursor", ["%%%", "bm90LWEta2V5", "MjAyNi0xMi0wMVQxNjoyMzowMFojeA"])
def test_a_cursor_this_api_did_not_return_is_422(world: World, cursor: str) -> None:
    result = call("GET", "/api/activity", user=world.a.user("member"), query=f"cursor={cursor}")

    assert result.status == 422
    assert result.body["error"]["code"] == "invalid_cursor"


def test_a_relay_killed_between_publish_and_mark_is_applied_once(
    world: World, db: TestDatabase, owner_conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = runtime_database(db)
    (event_id,) = emit(database, world.a.id, activated())

    def killed(self, event_ids):
        raise SystemExit("relay killed")

    with monkeypatch.context() as patch:
        patch.setattr(OutboxRelayRepository, "mark_published", killed)
        with pytest.raises(SystemExit):
            _relay()
    owner_conn.execute(
        "UPDATE alquimista_platform.domain_outbox SET claimed_until = now() - interval '1 s'"
    )
    report = _relay()
    sqs = boto3.client("sqs")
    queued = sqs.get_queue_attributes(
        QueueUrl=_queue_url(), AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]

    processed = _consume_all()

    assert report["reset_expired"] == 1
    assert report["published"] == 1
    assert int(queued) == 2  # the same event on the bus twice
    assert processed == 2
    assert [i["event_id"] for i in _feed_of(world.a.user("member"))] == [str(event_id)]


def test_a_malformed_message_fails_alone(world: World, db: TestDatabase) -> None:
    database = runtime_database(db)
    (event_id,) = emit(database, world.a.id, activated())
    _relay()
    sqs = boto3.client("sqs")
    good = sqs.receive_message(QueueUrl=_queue_url(), MaxNumberOfMessages=10)["Messages"]
    bad = {**good[0], "MessageId": "bad", "Body": json.dumps({"detail": {"event_id": "x"}})}

    result = consume(sqs_lambda_event([*good, bad], "arn:q"), lambda_context("activity"))

    assert result["batchItemFailures"] == [{"itemIdentifier": "bad"}]
    assert [i["event_id"] for i in _feed_of(world.a.user("member"))] == [str(event_id)]


def test_replaying_the_outbox_rebuilds_the_live_feed(
    world: World, db: TestDatabase, lambda_env: LocalResources, capsys
) -> None:
    # Given a live feed built by the relay and the consumer
    database = runtime_database(db)
    for _ in range(3):
        emit(database, world.a.id, activated(), activated())
        emit(database, world.b.id, activated())
    _relay()
    _consume_all()
    feed = _feed(lambda_env)
    live = {tenant: feed.items(tenant) for tenant in (world.a.id, world.b.id)}
    assert len(live[world.a.id]) == 6
    assert len(live[world.b.id]) == 3
    # ... which then loses items
    feed.clear(None)
    assert feed.items(world.a.id) == []

    # When every feed is rebuilt from the outbox
    code = outbox_cli.main(
        [
            "--database-url",
            db.runtime_url,
            "replay",
            "--projection",
            "activity",
            "--table",
            lambda_env.activity_table,
            "--aws-endpoint-url",
            "",
            "--quiet",
        ]
    )

    # Then it is the live feed again, item for item
    assert code == 0
    assert "0 item(s) removed, 9 rebuilt" in capsys.readouterr().out
    assert {tenant: feed.items(tenant) for tenant in live} == live


def test_replaying_one_tenant_leaves_the_others_alone(
    world: World, db: TestDatabase, lambda_env: LocalResources, capsys
) -> None:
    database = runtime_database(db)
    emit(database, world.a.id, activated())
    emit(database, world.b.id, activated())
    _relay()
    _consume_all()
    feed = _feed(lambda_env)
    before_b = feed.items(world.b.id)
    before_a = feed.items(world.a.id)

    outbox_cli.main(
        [
            "--database-url", db.runtime_url, "replay", "--projection", "activity",
            "--tenant", str(world.a.id), "--table", lambda_env.activity_table,
            "--aws-endpoint-url", "", "--quiet",
        ]
    )  # fmt: skip

    assert "1 item(s) removed, 1 rebuilt" in capsys.readouterr().out
    assert feed.items(world.a.id) == before_a
    assert feed.items(world.b.id) == before_b


def test_status_prints_the_backlog(db: TestDatabase, world: World, capsys) -> None:
    emit(runtime_database(db), world.a.id, activated())

    assert outbox_cli.main(["--database-url", db.runtime_url, "status"]) == 0

    out = capsys.readouterr().out
    assert "pending   1" in out
    assert "dead      0" in out


def test_the_dev_timer_tick_relays_and_delivers_like_aws(world: World, db: TestDatabase) -> None:
    (event_id,) = emit(runtime_database(db), world.a.id, activated())

    line = relay_and_deliver(NAMES, lambda_context)

    assert line == "published 1, dead 0, delivered 1"
    assert [i["event_id"] for i in _feed_of(world.a.user("admin"))] == [str(event_id)]


def test_the_dev_timer_runs_until_stopped(world: World, db: TestDatabase) -> None:
    (event_id,) = emit(runtime_database(db), world.a.id, activated())
    lock = threading.Lock()

    stop = start_outbox_timer(lock, NAMES, lambda_context, interval_s=0.05)
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            with lock:
                feed = _feed_of(world.a.user("admin"))
            if feed:
                break
            time.sleep(0.05)
    finally:
        stop()

    assert [i["event_id"] for i in feed] == [str(event_id)]


def _relay_log_levels(caplog: pytest.LogCaptureFixture) -> list[str]:
    levels = [r.levelname for r in caplog.records if r.getMessage() == "outbox relay done"]
    caplog.clear()
    return levels


def test_an_idle_relay_run_stays_out_of_the_info_log(
    world: World, db: TestDatabase, owner_conn, caplog: pytest.LogCaptureFixture
) -> None:
    # `make dev` runs the relay every 2 s: an empty outbox must not print a line each time.
    owner_conn.execute("DELETE FROM alquimista_platform.domain_outbox")
    caplog.set_level("DEBUG", logger="alquimista")
    assert _relay()["claimed"] == 0
    assert _relay_log_levels(caplog) == ["DEBUG"]

    emit(runtime_database(db), world.a.id, activated())
    assert _relay()["published"] == 1
    assert _relay_log_levels(caplog) == ["INFO"]
