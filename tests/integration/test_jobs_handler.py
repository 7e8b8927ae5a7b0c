"""The scheduled-jobs Lambda: expire_trials as the runtime role, under a DynamoDB lease."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any, cast

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.jobs.handler import lambda_handler
from scripts.devstack.gateway import LambdaContextStub
from scripts.devstack.seed_catalog import find_agent
from tests.support.factories import create_catalog, create_tenant, create_trial


def _invoke(job: str) -> dict[str, Any]:
    context = LambdaContextStub(function_name="alquimista-dev-jobs")
    report: dict[str, Any] = lambda_handler({"job": job}, cast("LambdaContext", context))
    return report


def _trial_status(owner, tenant_id, trial_id) -> str:
    owner.execute("SELECT set_config('app.current_tenant_id', %s, false)", (str(tenant_id),))
    row = owner.execute("SELECT status FROM public.trials WHERE id = %s", (trial_id,)).fetchone()
    return str(row["status"])


def test_expire_trials_expires_only_what_is_due_in_every_tenant(lambda_env, owner) -> None:
    create_catalog(owner)
    first, second = create_tenant(owner), create_tenant(owner)
    agent = find_agent("sdr-prospector").id
    past = datetime.now().astimezone() - timedelta(minutes=1)
    due = create_trial(owner, first, agent_id=agent, expires_at=past)
    used_up = create_trial(owner, second, agent_id=agent, max_usage=3, usage_count=3)
    other_agent = find_agent("lead-qualifier").id
    live = create_trial(owner, second, agent_id=other_agent)

    report = _invoke("expire_trials")

    assert report == {**report, "job": "expire_trials", "ok": True, "skipped": False, "affected": 2}
    assert _trial_status(owner, first.id, due) == "expired"
    assert _trial_status(owner, second.id, used_up) == "expired"
    assert _trial_status(owner, second.id, live) == "active"


def test_a_run_while_another_holds_the_lease_is_skipped(lambda_env) -> None:
    now = int(time.time())
    boto3.client("dynamodb").put_item(
        TableName=lambda_env.locks_table,
        Item={
            "lock_id": {"S": "jobs:expire_trials:dev"},
            "owner": {"S": "another-runner"},
            "acquired_at": {"N": str(now)},
            "expires_at": {"N": str(now + 300)},
        },
    )

    report = _invoke("expire_trials")

    assert report["ok"] is True
    assert report["skipped"] is True
    assert "another-runner" in report["error"]


def test_the_lease_is_released_after_the_run(lambda_env) -> None:
    _invoke("expire_trials")

    item = boto3.client("dynamodb").get_item(
        TableName=lambda_env.locks_table, Key={"lock_id": {"S": "jobs:expire_trials:dev"}}
    )
    assert "Item" not in item


def test_an_unknown_job_is_reported_not_run(lambda_env) -> None:
    report = _invoke("reindex_everything")

    assert report["ok"] is False
    assert "expire_trials" in report["error"]


def test_the_dsr_deadline_job_counts_open_requests_due_within_48_hours_in_every_tenant(
    lambda_env, owner
) -> None:
    first, second = create_tenant(owner), create_tenant(owner)
    with owner.transaction():
        for tenant, age_days, status in (
            (first, 14, "open"),  # due in a day
            (second, 16, "in_progress"),  # already late
            (second, 1, "open"),  # due in two weeks
            (first, 14, "completed"),  # answered
        ):
            owner.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant.id),))
            owner.execute(
                """
                INSERT INTO nigredo_leads.data_subject_requests (
                    tenant_id, kind, status, due_at, created_at, completed_at)
                VALUES (%s, 'access', %s, now(), now() - make_interval(days => %s),
                        CASE WHEN %s = 'completed' THEN now() END)
                """,
                (tenant.id, status, age_days, status),
            )

    report = _invoke("leads_dsr_deadlines")

    assert report == {**report, "job": "leads_dsr_deadlines", "ok": True, "affected": 2}
