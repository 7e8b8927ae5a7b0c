"""The leads' scheduled jobs through the jobs Lambda: the metrics rollup (idempotent), the
purge of rows soft-deleted more than 30 days ago and the text search's key counts, in every
tenant."""

from __future__ import annotations

from typing import Any, cast

import psycopg
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.jobs.handler import lambda_handler
from scripts.devstack.gateway import LambdaContextStub
from tests.support.factories import TestTenant, create_tenant


def _invoke(job: str) -> dict[str, Any]:
    context = LambdaContextStub(function_name="alquimista-dev-jobs")
    report: dict[str, Any] = lambda_handler({"job": job}, cast("LambdaContext", context))
    return report


def _scoped(owner: psycopg.Connection[Any], tenant: TestTenant) -> None:
    owner.execute("SELECT set_config('app.current_tenant_id', %s, false)", (str(tenant.id),))


def _lead(owner: psycopg.Connection[Any], tenant: TestTenant, *, deleted_days_ago: int | None):
    _scoped(owner, tenant)
    row = owner.execute(
        """
        INSERT INTO nigredo_leads.leads (tenant_id, full_name, deleted_at)
        VALUES (%s, 'Lead', CASE WHEN %s::int IS NULL THEN NULL
                                 ELSE now() - make_interval(days => %s::int) END)
        RETURNING id
        """,
        (tenant.id, deleted_days_ago, deleted_days_ago),
    ).fetchone()
    assert row is not None
    return row["id"]


def _metrics(owner: psycopg.Connection[Any], tenant: TestTenant) -> list[dict[str, Any]]:
    _scoped(owner, tenant)
    return owner.execute(
        """
        SELECT day, leads_created, contacted, interactions, updated_at
        FROM nigredo_leads.metricas_diarias WHERE tenant_id = %s ORDER BY day
        """,
        (tenant.id,),
    ).fetchall()


def test_the_rollup_counts_every_tenants_day_and_a_rerun_changes_no_count(
    lambda_env, owner
) -> None:
    first, second = create_tenant(owner), create_tenant(owner)
    lead = _lead(owner, first, deleted_days_ago=None)
    owner.execute(
        """
        INSERT INTO nigredo_leads.interacoes (tenant_id, lead_id, channel, direction)
        VALUES (%s, %s, 'email', 'outbound')
        """,
        (first.id, lead),
    )
    _lead(owner, second, deleted_days_ago=None)
    _lead(owner, second, deleted_days_ago=None)

    report = _invoke("rollup_leads_metrics")
    before = _metrics(owner, first)
    again = _invoke("rollup_leads_metrics")
    after = _metrics(owner, first)

    assert report == {**report, "job": "rollup_leads_metrics", "ok": True, "skipped": False}
    assert again["ok"] is True
    counts = [(m["leads_created"], m["contacted"], m["interactions"]) for m in after]
    assert (1, 1, 1) in counts
    assert [(m["day"], m["leads_created"]) for m in before] == [
        (m["day"], m["leads_created"]) for m in after
    ]
    assert sum(m["leads_created"] for m in _metrics(owner, second)) == 2


def test_the_purge_removes_only_rows_deleted_more_than_30_days_ago(lambda_env, owner) -> None:
    first, second = create_tenant(owner), create_tenant(owner)
    old = _lead(owner, first, deleted_days_ago=40)
    recent = _lead(owner, first, deleted_days_ago=5)
    live = _lead(owner, first, deleted_days_ago=None)
    other_old = _lead(owner, second, deleted_days_ago=31)

    report = _invoke("purge_deleted_leads")

    assert report == {**report, "job": "purge_deleted_leads", "ok": True, "affected": 2}
    _scoped(owner, first)
    left = {r["id"] for r in owner.execute("SELECT id FROM nigredo_leads.leads").fetchall()}
    assert left == {recent, live}
    assert old not in left
    _scoped(owner, second)
    assert owner.execute(
        "SELECT count(*) AS n FROM nigredo_leads.leads WHERE id = %s", (other_old,)
    ).fetchone() == {"n": 0}
    audited = owner.execute(
        "SELECT count(*) AS n FROM alquimista_platform.audit_logs WHERE action = 'leads.purged'"
    ).fetchone()
    assert audited is not None
    assert audited["n"] >= 1


def test_the_key_count_job_counts_every_tenant_s_live_leads(lambda_env, owner) -> None:
    # Given two tenants' leads (the job's floor is 64 leads a key)
    first, second = create_tenant(owner), create_tenant(owner)
    for tenant, live in ((first, 70), (second, 64)):
        _scoped(owner, tenant)
        owner.execute(
            """
            INSERT INTO nigredo_leads.leads (tenant_id, company)
            SELECT %s, 'Acme ' || n FROM generate_series(1, %s) AS n
            """,
            (tenant.id, live),
        )
    owner.commit()

    # When the job runs
    report = _invoke("count_lead_search_keys")

    # Then each tenant's keys held by at least 64 live leads are counted, in its own rows
    assert report == {**report, "job": "count_lead_search_keys", "ok": True}
    counts = {}
    for tenant in (first, second):
        _scoped(owner, tenant)
        counts[tenant.id] = {
            row["key"][8:]: row["leads"]
            for row in owner.execute(
                "SELECT key, leads FROM nigredo_leads.search_key_counts WHERE tenant_id = %s",
                (tenant.id,),
            )
        }
    assert counts[first.id] == {"": 70, "acm": 70, "cme": 70}  # "": the live leads
    assert counts[second.id] == {"": 64, "acm": 64, "cme": 64}
    assert report["affected"] >= 4  # every tenant of the database, these two among them
