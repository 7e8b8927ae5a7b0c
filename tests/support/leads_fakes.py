"""In-memory fakes of the leads ports (lambdas/leads/ports.py), recording commits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any, NoReturn
from uuid import UUID

from lambdas.leads.errors import DuplicateLead
from lambdas.leads.models import (
    Campaign,
    Change,
    Conflict,
    FeedPage,
    Interaction,
    Lead,
    LeadFields,
    LeadFilters,
    LeadWrite,
    Meeting,
    NewConflict,
)
from lambdas.shared.events import validated_payload
from lambdas.shared.scope import EventDraft


class FakeLeadStore:
    def __init__(self, tenant_id: UUID) -> None:
        self.tenant_id = tenant_id
        self.rows: dict[UUID, Lead] = {}

    def _holder(self, email: str | None, phone: str | None, *, besides: UUID | None) -> Lead | None:
        for lead in self.rows.values():
            live = lead.deleted_at is None and lead.id != besides
            if live and (
                (email and lead.email_normalized == email) or (phone and lead.phone_e164 == phone)
            ):
                return lead
        return None

    def create(
        self, lead_id: UUID | None, fields: LeadFields, *, email_normalized: str | None,
        phone_e164: str | None,
    ) -> Lead:  # fmt: skip
        holder = self._holder(email_normalized, phone_e164, besides=None)
        if holder is not None:
            field = (
                "email"
                if email_normalized and holder.email_normalized == email_normalized
                else "phone"
            )
            raise DuplicateLead(holder.id, field)
        now = datetime.now(UTC)
        lead = Lead(
            **fields.model_dump(), id=lead_id or uuid.uuid4(), tenant_id=self.tenant_id,
            email_normalized=email_normalized, phone_e164=phone_e164, consent_status="unknown",
            version=1, created_at=now, updated_at=now,
        )  # fmt: skip
        self.rows[lead.id] = lead
        return lead

    def find_live_by_identifiers(self, email: str | None, phone: str | None) -> UUID | None:
        holder = self._holder(email, phone, besides=None)
        return holder.id if holder else None

    def get(
        self, lead_id: UUID, *, include_deleted: bool = False, lock: bool = False
    ) -> Lead | None:
        lead = self.rows.get(lead_id)
        if lead is None or (lead.deleted_at is not None and not include_deleted):
            return None
        return lead

    def get_many(self, lead_ids: Sequence[UUID], *, lock: bool = False) -> dict[UUID, Lead]:
        return {i: self.rows[i] for i in lead_ids if i in self.rows}

    def live_owners(
        self, emails: Sequence[str], phones: Sequence[str]
    ) -> dict[tuple[str, str], UUID]:
        owners: dict[tuple[str, str], UUID] = {}
        for lead in self.rows.values():
            if lead.deleted_at is None:
                if lead.email_normalized and lead.email_normalized in emails:
                    owners["email", lead.email_normalized] = lead.id
                if lead.phone_e164 and lead.phone_e164 in phones:
                    owners["phone", lead.phone_e164] = lead.id
        return owners

    def _bump(self, lead: Lead, **changes: Any) -> Lead:
        updated = lead.model_copy(update={**changes, "version": lead.version + 1})
        self.rows[lead.id] = updated
        return updated

    def update(
        self, lead_id: UUID, fields: LeadFields, *, expected_version: int | None,
        email_normalized: str | None, phone_e164: str | None,
    ) -> Lead | None:  # fmt: skip
        lead = self.get(lead_id)
        if lead is None or (expected_version is not None and lead.version != expected_version):
            return None
        holder = self._holder(email_normalized, phone_e164, besides=lead_id)
        if holder is not None:
            raise DuplicateLead(holder.id, "email")
        return self._bump(
            lead, **fields.model_dump(), email_normalized=email_normalized, phone_e164=phone_e164
        )

    def soft_delete(self, lead_id: UUID, *, expected_version: int | None) -> Lead | None:
        lead = self.get(lead_id)
        if lead is None or (expected_version is not None and lead.version != expected_version):
            return None
        return self._bump(lead, deleted_at=datetime.now(UTC))

    def page(
        self, filters: LeadFilters, *, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[Lead]:
        live = sorted(
            (lead for lead in self.rows.values() if lead.deleted_at is None),
            key=lambda lead: (lead.created_at, lead.id),
            reverse=True,
        )
        if after is not None:
            live = [lead for lead in live if (lead.created_at, lead.id) < after]
        return live[:limit]


class FakeLeadWrites:
    """The batch writes over the fake store, row by row (a taken key: not written)."""

    def __init__(self, leads: FakeLeadStore) -> None:
        self.leads = leads

    def create_many(self, rows: Sequence[LeadWrite]) -> dict[UUID, Lead]:
        written: dict[UUID, Lead] = {}
        for lead_id, fields, email, phone in rows:
            try:
                lead = self.leads.create(lead_id, fields, email_normalized=email, phone_e164=phone)
            except DuplicateLead:
                continue
            written[lead.id] = lead
        return written

    def update_many(self, rows: Sequence[LeadWrite]) -> dict[UUID, Lead]:
        written: dict[UUID, Lead] = {}
        for lead_id, fields, email, phone in rows:
            lead = self.leads.update(
                lead_id, fields, expected_version=None, email_normalized=email, phone_e164=phone
            )
            if lead is not None:
                written[lead.id] = lead
        return written

    def soft_delete_many(self, lead_ids: Sequence[UUID]) -> dict[UUID, Lead]:
        written: dict[UUID, Lead] = {}
        for lead_id in lead_ids:
            lead = self.leads.soft_delete(lead_id, expected_version=None)
            if lead is not None:
                written[lead.id] = lead
        return written


class FakePipelineWrites:
    """The fake tenant has no campaigns, interactions or meetings; their pushes are tested on
    PostgreSQL (tests/integration/test_leads_sync_entities.py), so a write here is a test bug."""

    def campaigns(self, ids: Sequence[UUID], *, lock: bool = False) -> dict[UUID, Campaign]:
        return {}

    def interactions(self, ids: Sequence[UUID]) -> dict[UUID, Interaction]:
        return {}

    def meetings(self, ids: Sequence[UUID], *, lock: bool = False) -> dict[UUID, Meeting]:
        return {}

    def campaign_name_owners(self, names: Sequence[str]) -> dict[str, Campaign]:
        return {}

    def _refuse(self) -> NoReturn:
        raise NotImplementedError("the fake holds leads only")

    def create_campaigns(
        self, rows: Sequence[dict[str, Any]], *, user_id: UUID | None, skip_taken: bool = True
    ) -> dict[UUID, Campaign]:
        return self._refuse()

    def update_campaigns(self, rows: Sequence[dict[str, Any]]) -> dict[UUID, Campaign]:
        return self._refuse()

    def delete_campaigns(self, ids: Sequence[UUID]) -> dict[UUID, Campaign]:
        return self._refuse()

    def create_interactions(
        self, rows: Sequence[dict[str, Any]], *, user_id: UUID | None, skip_taken: bool = True
    ) -> dict[UUID, Interaction]:
        return self._refuse()

    def create_meetings(
        self, rows: Sequence[dict[str, Any]], *, skip_taken: bool = True
    ) -> dict[UUID, Meeting]:
        return self._refuse()

    def reschedule_meetings(self, rows: Sequence[dict[str, Any]]) -> dict[UUID, Meeting]:
        return self._refuse()

    def cancel_meetings(self, ids: Sequence[UUID]) -> dict[UUID, Meeting]:
        return self._refuse()


class FakeSuppression:
    def __init__(self) -> None:
        self.digests: set[tuple[str, str]] = set()

    def add(
        self, digests: Sequence[tuple[str, str]], *, reason: str, added_by: UUID | None
    ) -> None:
        self.digests.update(digests)

    def matches(self, digests: Sequence[tuple[str, str]]) -> list[str]:
        return sorted({kind for kind, digest in digests if (kind, digest) in self.digests})

    def suppressed(self, digests: Sequence[str]) -> set[str]:
        return {d for d in digests if any(d == held for _, held in self.digests)}


class FakeFeed:
    def __init__(self) -> None:
        self.entries: list[tuple[Change, int, int]] = []
        self.watermark: tuple[int, int] | None = None

    def page_json(self, *, after: tuple[int, int], limit: int) -> FeedPage:
        rows = [e for e in self.entries if (e[1], e[2]) > after]
        served = rows[:limit]
        return FeedPage(
            "[" + ",".join(change.model_dump_json() for change, _, _ in served) + "]",
            has_more=len(rows) > limit,
            last=(served[-1][1], served[-1][2]) if served else None,
        )

    def purge_watermark(self) -> tuple[int, int] | None:
        return self.watermark


class FakeSyncSettings:
    def __init__(self) -> None:
        self.lww = False

    def last_writer_wins(self) -> bool:
        return self.lww


class FakeMutations:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def claim_many(
        self, claims: Sequence[tuple[str, str, str, UUID]], *, device_id: str, batch_id: UUID,
        user_id: UUID | None,
    ) -> dict[str, UUID]:  # fmt: skip
        claimed: dict[str, UUID] = {}
        for cmid, _, _, _ in claims:
            if (device_id, cmid) not in self.rows:
                mutation_id = uuid.uuid4()
                self.rows[device_id, cmid] = {
                    "id": mutation_id,
                    "outcome": "rejected",
                    "result": {},
                }
                claimed[cmid] = mutation_id
        return claimed

    def stored_many(self, *, device_id: str, cmids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {
            c: {**self.rows[device_id, c]["result"], "outcome": self.rows[device_id, c]["outcome"]}
            for c in cmids
        }

    def finish_many(self, results: Sequence[tuple[UUID, str, dict[str, Any]]]) -> None:
        by_id = {row["id"]: row for row in self.rows.values()}
        for mutation_id, outcome, result in results:
            by_id[mutation_id].update(outcome=outcome, result=result)


class FakeConflicts:
    def __init__(self, tenant_id: UUID) -> None:
        self.rows: dict[UUID, Conflict] = {}

    def add_many(self, conflicts: Sequence[NewConflict]) -> None:
        for new in conflicts:
            self.rows[new.id] = Conflict.model_validate(
                {**asdict(new), "status": "open", "resolution": None}
            )

    def get(self, conflict_id: UUID, *, lock: bool = False) -> Conflict | None:
        return self.rows.get(conflict_id)

    def resolve(self, conflict_id: UUID, *, resolution: str, resolved_by: UUID | None) -> bool:
        conflict = self.rows[conflict_id]
        self.rows[conflict_id] = conflict.model_copy(
            update={"status": "resolved", "resolution": resolution}
        )
        return True

    def open_conflicts(self, *, limit: int = 100) -> list[Conflict]:
        return [c for c in self.rows.values() if c.status == "open"][:limit]


class FakeConsents:
    def __init__(self, leads: FakeLeadStore) -> None:
        self.leads = leads
        self.events: list[dict[str, Any]] = []

    def record(self, lead_id: UUID, **event: Any) -> dict[str, Any] | None:
        if self.leads.get(lead_id) is None:
            return None
        self.events.append({"id": uuid.uuid4(), "lead_id": lead_id, **event})
        return self.events[-1]

    def history(self, lead_id: UUID) -> list[dict[str, Any]]:
        return [event for event in self.events if event["lead_id"] == lead_id]


class FakeRequests:
    def __init__(self, leads: FakeLeadStore) -> None:
        self.leads = leads
        self.rows: dict[UUID, dict[str, Any]] = {}
        self.erased: list[UUID] = []

    def open(
        self, lead_id: UUID, *, kind: str, channel: str, requested_by: UUID | None
    ) -> dict[str, Any]:
        request_id = uuid.uuid4()
        row: dict[str, Any] = {
            "id": request_id,
            "lead_id": lead_id,
            "kind": kind,
            "channel": channel,
            "status": "open",
        }
        self.rows[request_id] = row
        return row

    def get(self, request_id: UUID) -> dict[str, Any] | None:
        return self.rows.get(request_id)

    def page(self, *, status: str | None, limit: int) -> list[dict[str, Any]]:
        rows = [r for r in self.rows.values() if status is None or r["status"] == status]
        return rows[:limit]

    def complete(self, request_id: UUID, *, outcome: dict[str, Any]) -> dict[str, Any] | None:
        self.rows[request_id].update(status="completed", outcome=outcome)
        return self.rows[request_id]

    def export(self, lead_id: UUID) -> dict[str, Any]:
        lead = self.leads.rows[lead_id]
        return {"lead": lead.model_dump(mode="json")}

    def erase(self, lead_id: UUID) -> None:
        self.erased.append(lead_id)


class FakeAudit:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def append(
        self, action: str, *, resource_type: str, resource_id: str | None = None,
        outcome: str = "success", details: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self.entries.append(
            {"action": action, "resource_id": resource_id, "details": dict(details or {})}
        )


class FakeRetention:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def metrics(self, *, day_from: date, day_to: date) -> list[dict[str, Any]]:
        return [r for r in self.rows if day_from <= r["day"] <= day_to]


class FakeReports:
    def __init__(self, leads: FakeLeadStore, consents: FakeConsents) -> None:
        self.leads = leads
        self.consents = consents

    def legal_bases(self) -> dict[str, int]:
        bases: dict[str, int] = {}
        for lead in self.leads.rows.values():
            if lead.deleted_at is None:
                bases[lead.legal_basis] = bases.get(lead.legal_basis, 0) + 1
        return bases

    def consent_purposes(self) -> list[str]:
        return sorted({p for event in self.consents.events for p in event.get("purposes", [])})


class FakeLeadsUow:
    """One tenant's leads in memory; ``commits`` counts the units of work that committed."""

    def __init__(self, tenant_id: UUID | None = None) -> None:
        tenant = tenant_id or uuid.uuid4()
        self.leads = FakeLeadStore(tenant)
        self.lead_writes = FakeLeadWrites(self.leads)
        self.pipeline_writes = FakePipelineWrites()
        self.suppression = FakeSuppression()
        self.feed = FakeFeed()
        self.sync_settings = FakeSyncSettings()
        self.mutations = FakeMutations()
        self.conflicts = FakeConflicts(tenant)
        self.consents = FakeConsents(self.leads)
        self.requests = FakeRequests(self.leads)
        self.retention = FakeRetention()
        self.reports = FakeReports(self.leads, self.consents)
        self.audit_log = FakeAudit()
        self.announced: list[EventDraft] = []
        self.entered = 0
        self.commits = 0

    @property
    def audit(self) -> FakeAudit:
        return self.audit_log

    def record(
        self,
        event_type: str,
        *,
        aggregate_type: str,
        aggregate_id: str,
        payload: Mapping[str, Any],
        version: int = 1,
    ) -> None:
        data = validated_payload(event_type, version, aggregate_type, payload)
        self.audit_log.append(
            event_type, resource_type=aggregate_type, resource_id=aggregate_id, details=data
        )

    def announce_many(self, events: Sequence[EventDraft]) -> None:
        for event in events:
            validated_payload(event.event_type, event.version, event.aggregate_type, event.payload)
        self.announced.extend(events)

    def commit(self) -> None:
        self.commits += 1

    @contextmanager
    def factory(self) -> Iterator[FakeLeadsUow]:
        self.entered += 1
        yield self
