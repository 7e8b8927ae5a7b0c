"""Read-only reports of the leads group: the daily metrics and the processing record."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from lambdas.leads.models import DailyMetric, MetricsResponse, ProcessingActivity, ProcessingRecord
from lambdas.leads.ports import LeadsUowFactory
from lambdas.shared.errors import ValidationFailed

MAX_METRICS_DAYS = 366
PURGE_AFTER_DAYS = 30

_CONTACT = ["identification (name, job title, company, CNPJ/CPF)", "contact (e-mail, phone)"]
_HOSTING = "Amazon Web Services (operator: hosting, database, e-mail delivery)"

# The processing the platform performs for a tenant's leads, whatever the tenant configures.
# Derived, not stored: it describes what this code does, so it cannot drift from it (a
# tenant-edited record would need to be kept true by hand). The tenant's own facts (legal bases
# and consent purposes in use) are read from its data when the record is requested.
ACTIVITIES: tuple[ProcessingActivity, ...] = (
    ProcessingActivity(
        purpose="prospecting: finding and qualifying B2B sales leads",
        legal_bases=["legitimate_interest", "consent"],
        data_categories=[*_CONTACT, "pipeline (status, score, tags, owner, campaign)"],
        retention=(
            "while the lead is live; soft-deleted leads are purged after "
            f"{PURGE_AFTER_DAYS} days; erasure anonymises at once"
        ),
        recipients=["the tenant's users with leads:read", _HOSTING],
    ),
    ProcessingActivity(
        purpose="outreach and meetings: contacting leads and booking meetings",
        legal_bases=["consent", "legitimate_interest"],
        data_categories=[*_CONTACT, "interactions (channel, content)", "meetings (time, notes)"],
        retention="with the lead; content blanked by erasure",
        recipients=["the tenant's users with leads:read", _HOSTING],
    ),
    ProcessingActivity(
        purpose="consent proof (LGPD Art. 8)",
        legal_bases=["legal_obligation"],
        data_categories=["consent events (purposes, text version, channel, IP as HMAC)"],
        retention="append-only while the lead exists; the IP HMAC is cleared by erasure",
        recipients=["the tenant's administrators", _HOSTING],
    ),
    ProcessingActivity(
        purpose="suppression: never contacting or importing an opted-out person again",
        legal_bases=["legal_obligation", "legitimate_interest"],
        data_categories=["HMAC-SHA256 digests of e-mail and phone (no clear data)"],
        retention="indefinitely (outlives erasure by design)",
        recipients=[_HOSTING],
    ),
    ProcessingActivity(
        purpose="data subject requests (LGPD Art. 18, 19)",
        legal_bases=["legal_obligation"],
        data_categories=["request kind, status, dates (no personal data)"],
        retention="kept as the record of compliance",
        recipients=["the tenant's administrators", _HOSTING],
    ),
)


def metrics(
    uow_factory: LeadsUowFactory, *, day_from: date | None, day_to: date | None
) -> MetricsResponse:
    """The daily rollup per campaign and day (the last 30 days by default)."""
    day_to = day_to or datetime.now(UTC).date()
    day_from = day_from or day_to - timedelta(days=29)
    if day_from > day_to or (day_to - day_from).days >= MAX_METRICS_DAYS:
        raise ValidationFailed(f"the range runs forward and spans at most {MAX_METRICS_DAYS} days")
    with uow_factory() as uow:
        rows = uow.retention.metrics(day_from=day_from, day_to=day_to)
    return MetricsResponse(items=[DailyMetric.model_validate(row) for row in rows])


def processing_record(uow_factory: LeadsUowFactory, *, tenant_id: UUID) -> ProcessingRecord:
    """The tenant's Art. 37 record: the platform's processing activities and the tenant's legal
    bases and consent purposes in use."""
    with uow_factory() as uow:
        bases = uow.reports.legal_bases()
        purposes = uow.reports.consent_purposes()
    return ProcessingRecord(
        controller_tenant_id=tenant_id,
        activities=list(ACTIVITIES),
        legal_bases_in_use=bases,
        consent_purposes_in_use=purposes,
        generated_at=datetime.now(UTC),
    )
