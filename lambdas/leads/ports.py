"""What the leads services need from their unit of work (repositories satisfy it over
PostgreSQL; tests/support/leads_fakes.py in memory)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID

from lambdas.leads.models import (
    Campaign,
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
from lambdas.shared.scope import AuditLog, ChangeRecorder, EventDraft


class LeadStore(Protocol):
    def create(
        self,
        lead_id: UUID | None,
        fields: LeadFields,
        *,
        email_normalized: str | None,
        phone_e164: str | None,
    ) -> Lead: ...

    def find_live_by_identifiers(self, email: str | None, phone: str | None) -> UUID | None: ...

    def get_many(self, lead_ids: Sequence[UUID], *, lock: bool = False) -> dict[UUID, Lead]: ...

    def live_owners(
        self, emails: Sequence[str], phones: Sequence[str]
    ) -> dict[tuple[str, str], UUID]: ...

    def get(
        self, lead_id: UUID, *, include_deleted: bool = False, lock: bool = False
    ) -> Lead | None: ...

    def update(
        self,
        lead_id: UUID,
        fields: LeadFields,
        *,
        expected_version: int | None,
        email_normalized: str | None,
        phone_e164: str | None,
    ) -> Lead | None: ...

    def soft_delete(self, lead_id: UUID, *, expected_version: int | None) -> Lead | None: ...

    def page(
        self, filters: LeadFilters, *, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[Lead]: ...


class BatchRefused(Exception):
    """A multi-row write was refused as a whole (a unique index); nothing of it was written."""


class LeadBatchStore(Protocol):
    """The multi-row writes of a sync batch; each returns the rows written, by id (an absent id
    was not written: a create whose id or natural key is taken, a row gone or deleted)."""

    def create_many(self, rows: Sequence[LeadWrite]) -> dict[UUID, Lead]: ...

    def update_many(self, rows: Sequence[LeadWrite]) -> dict[UUID, Lead]: ...

    def soft_delete_many(self, lead_ids: Sequence[UUID]) -> dict[UUID, Lead]: ...


class PipelineBatchStore(Protocol):
    """The campaign, interaction and meeting reads and writes of a sync batch (rows: the id and
    the columns to write); each write returns the rows written by id."""

    def campaigns(self, ids: Sequence[UUID], *, lock: bool = False) -> dict[UUID, Campaign]: ...

    def interactions(self, ids: Sequence[UUID]) -> dict[UUID, Interaction]: ...

    def meetings(self, ids: Sequence[UUID], *, lock: bool = False) -> dict[UUID, Meeting]: ...

    def campaign_name_owners(self, names: Sequence[str]) -> dict[str, Campaign]: ...

    def create_campaigns(
        self, rows: Sequence[dict[str, Any]], *, user_id: UUID | None, skip_taken: bool = True
    ) -> dict[UUID, Campaign]: ...

    def update_campaigns(self, rows: Sequence[dict[str, Any]]) -> dict[UUID, Campaign]: ...

    def delete_campaigns(self, ids: Sequence[UUID]) -> dict[UUID, Campaign]: ...

    def create_interactions(
        self, rows: Sequence[dict[str, Any]], *, user_id: UUID | None, skip_taken: bool = True
    ) -> dict[UUID, Interaction]: ...

    def create_meetings(
        self, rows: Sequence[dict[str, Any]], *, skip_taken: bool = True
    ) -> dict[UUID, Meeting]: ...

    def reschedule_meetings(self, rows: Sequence[dict[str, Any]]) -> dict[UUID, Meeting]: ...

    def cancel_meetings(self, ids: Sequence[UUID]) -> dict[UUID, Meeting]: ...


class SuppressionStore(Protocol):
    def add(
        self, digests: Sequence[tuple[str, str]], *, reason: str, added_by: UUID | None
    ) -> None: ...

    def matches(self, digests: Sequence[tuple[str, str]]) -> list[str]: ...

    def suppressed(self, digests: Sequence[str]) -> set[str]: ...


class FeedReader(Protocol):
    def page_json(self, *, after: tuple[int, int], limit: int) -> FeedPage: ...

    def purge_watermark(self) -> tuple[int, int] | None: ...


class SyncSettings(Protocol):
    def last_writer_wins(self) -> bool: ...


class MutationStore(Protocol):
    def claim_many(
        self,
        claims: Sequence[tuple[str, str, str, UUID]],
        *,
        device_id: str,
        batch_id: UUID,
        user_id: UUID | None,
    ) -> dict[str, UUID]: ...

    def stored_many(self, *, device_id: str, cmids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def finish_many(self, results: Sequence[tuple[UUID, str, dict[str, Any]]]) -> None: ...


class ConflictStore(Protocol):
    def add_many(self, conflicts: Sequence[NewConflict]) -> None: ...

    def get(self, conflict_id: UUID, *, lock: bool = False) -> Conflict | None: ...

    def resolve(self, conflict_id: UUID, *, resolution: str, resolved_by: UUID | None) -> bool: ...

    def open_conflicts(self, *, limit: int = 100) -> list[Conflict]: ...


class ConsentStore(Protocol):
    def record(
        self,
        lead_id: UUID,
        *,
        action: str,
        channel: str,
        purposes: Sequence[str],
        text_version: str | None,
        ip_hmac: str | None,
        recorded_by: UUID | None,
    ) -> dict[str, Any] | None: ...

    def history(self, lead_id: UUID) -> list[dict[str, Any]]: ...


class SubjectRequestStore(Protocol):
    def open(
        self, lead_id: UUID, *, kind: str, channel: str, requested_by: UUID | None
    ) -> dict[str, Any]: ...

    def complete(self, request_id: UUID, *, outcome: dict[str, Any]) -> dict[str, Any] | None: ...

    def get(self, request_id: UUID) -> dict[str, Any] | None: ...

    def page(self, *, status: str | None, limit: int) -> list[dict[str, Any]]: ...

    def export(self, lead_id: UUID) -> dict[str, Any]: ...

    def erase(self, lead_id: UUID) -> None: ...


class Metrics(Protocol):
    def metrics(self, *, day_from: date, day_to: date) -> list[dict[str, Any]]: ...


class Reports(Protocol):
    def legal_bases(self) -> dict[str, int]: ...

    def consent_purposes(self) -> list[str]: ...


class LeadsUow(ChangeRecorder, Protocol):
    def announce_many(self, events: Sequence[EventDraft]) -> None: ...

    @property
    def leads(self) -> LeadStore: ...

    @property
    def lead_writes(self) -> LeadBatchStore: ...

    @property
    def pipeline_writes(self) -> PipelineBatchStore: ...

    @property
    def suppression(self) -> SuppressionStore: ...

    @property
    def feed(self) -> FeedReader: ...

    @property
    def sync_settings(self) -> SyncSettings: ...

    @property
    def mutations(self) -> MutationStore: ...

    @property
    def conflicts(self) -> ConflictStore: ...

    @property
    def consents(self) -> ConsentStore: ...

    @property
    def requests(self) -> SubjectRequestStore: ...

    @property
    def retention(self) -> Metrics: ...

    @property
    def reports(self) -> Reports: ...

    @property
    def audit(self) -> AuditLog: ...

    def commit(self) -> None: ...


LeadsUowFactory = Callable[[], AbstractContextManager[LeadsUow]]
