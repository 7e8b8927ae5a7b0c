"""The leads' scheduled jobs, as the jobs Lambda registers them (``lambdas/jobs/handler.py``):
the daily metrics rollup, the purge of rows soft-deleted more than 30 days ago and the count of
the text search's keys. Each tenant runs in its own transaction (RLS applies), so one tenant's
failure keeps the others' work."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Final
from uuid import UUID

from lambdas.leads.uow import LeadsUnitOfWork
from lambdas.shared.db import UnitOfWork
from lambdas.shared.scope import RequestScope

PURGE_AFTER_DAYS: Final = 30

ScopeFactory = Callable[[], RequestScope]


def _tenants(scope: ScopeFactory) -> list[UUID]:
    with scope() as run, UnitOfWork(run, None) as uow:
        rows = uow.conn.execute("SELECT id FROM alquimista_platform.tenants ORDER BY id").fetchall()
    return [UUID(str(row["id"])) for row in rows]


def rollup_days(now: datetime) -> tuple[date, date]:
    """Yesterday and today (UTC): every tenant's time zone has finished yesterday's day or is
    still in it, and re-running a day gives the same rows."""
    today = now.astimezone(UTC).date()
    return today - timedelta(days=1), today


def rollup_leads_metrics_job(scope: ScopeFactory) -> Callable[[], int]:
    """``rollup_leads_metrics``: upsert ``metricas_diarias`` per tenant, campaign and day for
    yesterday and today; returns the rows written."""

    def run() -> int:
        written = 0
        days = rollup_days(datetime.now(UTC))
        for tenant_id in _tenants(scope):
            with scope() as request, LeadsUnitOfWork(request, tenant_id) as uow:
                for day in days:
                    written += uow.retention.rollup(day)
                uow.commit()
        return written

    return run


def purge_deleted_leads_job(scope: ScopeFactory) -> Callable[[], int]:
    """``purge_deleted_leads``: delete rows soft-deleted more than 30 days ago (the feed's
    watermark moves first, so older cursors resync); returns the rows deleted."""

    def run() -> int:
        deleted = 0
        for tenant_id in _tenants(scope):
            with scope() as request, LeadsUnitOfWork(request, tenant_id) as uow:
                purged = uow.retention.purge(days=PURGE_AFTER_DAYS)
                if purged:
                    uow.audit.append(
                        "leads.purged",
                        resource_type="tenant",
                        resource_id=str(tenant_id),
                        details={"rows": purged, "older_than_days": PURGE_AFTER_DAYS},
                    )
                uow.commit()
                deleted += purged
        return deleted

    return run


def count_lead_search_keys_job(scope: ScopeFactory) -> Callable[[], int]:
    """``count_lead_search_keys``: rewrite each tenant's ``search_key_counts``, which steer the
    leads list's text search (``LeadRepository.count_search_keys``); returns the keys counted."""

    def run() -> int:
        counted = 0
        for tenant_id in _tenants(scope):
            with scope() as request, LeadsUnitOfWork(request, tenant_id) as uow:
                counted += uow.leads.count_search_keys()
                uow.commit()
        return counted

    return run
