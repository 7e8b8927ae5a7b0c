"""The ``release_chat_reservations`` job through the jobs Lambda: in every tenant it frees the
tokens of expired reservations and hands back the questions an invocation that died left
'answering' (approved ones to 'pending', others 'failed'), leaving live ones alone."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, cast

import psycopg
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.chat.quota_repository import release_stale
from lambdas.jobs.handler import lambda_handler
from scripts.devstack.aws_resources import LocalResources
from scripts.devstack.gateway import LambdaContextStub
from tests.integration.conftest import World
from tests.support.chat import runtime_database
from tests.support.database import TestDatabase
from tests.support.factories import TestTenant
from tests.support.governance import create_approval

Conn = psycopg.Connection[dict[str, Any]]


def _question(
    owner_conn: Conn, tenant: TestTenant, *, minutes_ago: int, approval: uuid.UUID | None = None
) -> uuid.UUID:
    """A question left 'answering' for ``minutes_ago`` minutes."""
    user = tenant.user("member")
    with owner_conn.transaction():
        session = owner_conn.execute(
            "INSERT INTO chat.sessions (tenant_id, user_id) VALUES (%s, %s) RETURNING id",
            (tenant.id, user.id),
        ).fetchone()
        assert session is not None
        row = owner_conn.execute(
            """
            INSERT INTO chat.messages
                (tenant_id, session_id, user_id, role, content, status, approval_request_id)
            VALUES (%s, %s, %s, 'user', 'Qual o prazo?', 'answering', %s) RETURNING id
            """,
            (tenant.id, session["id"], user.id, approval),
        ).fetchone()
        assert row is not None
        # as it was when its invocation died (the trigger would stamp now())
        owner_conn.execute("SET LOCAL session_replication_role = replica")
        owner_conn.execute(
            "UPDATE chat.messages SET updated_at = now() - make_interval(mins => %s) WHERE id = %s",
            (minutes_ago, row["id"]),
        )
    return uuid.UUID(str(row["id"]))


def _status(owner_conn: Conn, message_id: uuid.UUID) -> tuple[str, str | None]:
    row = owner_conn.execute(
        "SELECT status, error_code FROM chat.messages WHERE id = %s", (message_id,)
    ).fetchone()
    assert row is not None
    return row["status"], row["error_code"]


def test_the_job_hands_back_abandoned_questions_in_every_tenant(
    world: World, owner: Conn, owner_conn: Conn, lambda_env: LocalResources
) -> None:
    # Given, in both tenants, questions whose invocation died ten minutes ago (one of them
    # approved by a human) and one being answered right now
    approval = create_approval(owner, world.a, world.a.user("member"))
    approved = _question(owner_conn, world.a, minutes_ago=10, approval=approval)
    plain_a = _question(owner_conn, world.a, minutes_ago=10)
    plain_b = _question(owner_conn, world.b, minutes_ago=10)
    live = _question(owner_conn, world.a, minutes_ago=0)

    # When the job runs, as EventBridge runs it
    context = LambdaContextStub(function_name="alquimista-dev-jobs")
    report = lambda_handler({"job": "release_chat_reservations"}, cast("LambdaContext", context))

    # Then the approved question can be resumed, the others say why they have no answer, and
    # the question still being answered is left to its invocation
    assert report == {**report, "ok": True, "skipped": False, "affected": 3}
    assert _status(owner_conn, approved) == ("pending", None)
    assert _status(owner_conn, plain_a) == ("failed", "answer_interrupted")
    assert _status(owner_conn, plain_b) == ("failed", "answer_interrupted")
    assert _status(owner_conn, live) == ("answering", None)

    # and a second run finds nothing left to release
    again = lambda_handler({"job": "release_chat_reservations"}, cast("LambdaContext", context))
    assert again == {**again, "ok": True, "affected": 0}


@pytest.mark.parametrize("age", [timedelta(0), timedelta(minutes=-5)], ids=["zero", "negative"])
def test_a_non_positive_age_is_refused(db: TestDatabase, age: timedelta) -> None:
    database = runtime_database(db)
    conn, _ = database.begin(None, read_only=False)
    try:
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            release_stale(conn, answers_older_than=age)
    finally:
        conn.rollback()
        database.close()
