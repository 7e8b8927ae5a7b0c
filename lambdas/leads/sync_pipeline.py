"""The batched push for campaigns, interactions and meetings, beside the leads of the same batch
(``sync_service.SyncService.push`` owns the batch and hands these mutations here).

Each mutation is decided like a lead's (``sync.classify``: versions, update/update, update/delete
and create/create on the natural key, last-writer-wins only where the tenant chose it) against
the server as the batch's earlier mutations left it, and written with the batch's others of its
kind in one multi-row statement. Campaigns: create, update, delete (soft); the live name is the
natural key. Interactions: create only (the timeline is append-only). Meetings: create
(schedule), update (reschedule), delete (cancel, as the cancel route); the owner's no-overlap
rule is the database's exclusion constraint, reported per mutation. Every applied change is
announced by the event the single-entity routes emit; the batch's one audit row (the push's
``sync.batch_applied``) covers them, as it covers the batch's leads.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from pydantic import BaseModel

from lambdas.leads.errors import CampaignNameTaken, LeadNotFound, map_violation
from lambdas.leads.models import (
    EDITABLE_CAMPAIGN_FIELDS,
    EDITABLE_MEETING_FIELDS,
    Campaign,
    CampaignMutation,
    Interaction,
    InteractionMutation,
    Lead,
    Meeting,
    MeetingMutation,
    MutationResult,
    NewConflict,
    SyncMutation,
)
from lambdas.leads.pipeline_service import (
    MeetingNotOpen,
    campaign_event,
    interaction_event,
    meeting_event,
)
from lambdas.leads.ports import BatchRefused, LeadsUow, PipelineBatchStore
from lambdas.leads.sync import Apply, ConflictFound, Reject, ServerRow, classify
from lambdas.shared.scope import EventDraft

PipelineMutation = CampaignMutation | InteractionMutation | MeetingMutation
Row = dict[str, Any]
R = TypeVar("R", Campaign, Interaction, Meeting)

APPEND_ONLY = "interactions_are_append_only"
FIELDS_REQUIRED = "fields are required"
LEAD_REQUIRED = "lead_id is required"
MEETING_FIXED = "a meeting's lead and owner are set when it is created"
ID_TAKEN = "id_taken"
OPEN_MEETING = frozenset({"scheduled", "confirmed"})

_CAMPAIGN_EVENTS = {
    "create": "campaign.created",
    "update": "campaign.updated",
    "delete": "campaign.deleted",
}
_MEETING_EVENTS = {
    "create": "meeting.scheduled",
    "update": "meeting.rescheduled",
    "delete": "meeting.canceled",
}


def rejected(cmid: str, entity_id: UUID, reason: str) -> MutationResult:
    return MutationResult(client_mutation_id=cmid, outcome="rejected", id=entity_id, reason=reason)


def applied(cmid: str, entity_id: UUID, version: int) -> MutationResult:
    return MutationResult(client_mutation_id=cmid, outcome="applied", id=entity_id, version=version)


def stored_conflict(
    conflicts: list[NewConflict],
    mutation: SyncMutation,
    mutation_id: UUID,
    decision: ConflictFound,
    *,
    mine: BaseModel | None,
    theirs: Lead | Campaign | Interaction | Meeting | None,
) -> MutationResult:
    """A conflict kept for the user with both versions (added to the batch's ``conflicts``,
    stored together); ``mine`` None is the client's delete. An update's ``mine`` holds the fields
    it sent only (a field it left out is not its to settle: keep_mine writes what it sent), a
    create's every field; ``theirs`` is the server's whole row."""
    conflict = NewConflict(
        id=uuid.uuid4(),
        mutation_id=mutation_id,
        entity=mutation.entity,
        entity_id=decision.existing_id,
        kind=decision.kind,
        mine=mine.model_dump(mode="json", exclude_unset=mutation.op == "update")
        if mine is not None
        else {"deleted": True},
        theirs=theirs.model_dump(mode="json") if theirs else {},
        base_version=mutation.base_version,
    )
    conflicts.append(conflict)
    return MutationResult(
        client_mutation_id=mutation.client_mutation_id,
        outcome="conflict",
        id=decision.existing_id,
        version=theirs.version if theirs else None,
        conflict_id=conflict.id,
        reason=decision.kind,
    )


def _written(
    mutation: CampaignMutation | MeetingMutation,
    current: Campaign | Meeting | None,
    editable: frozenset[str],
) -> Row | None:
    """The row a mutation writes (None: a delete): a create's every field; an update's fields
    sent over the server's editable ones (a field it left out keeps the server's value)."""
    if mutation.op == "delete" or mutation.fields is None:
        return None
    if mutation.op == "create" or current is None:
        return mutation.fields.model_dump(mode="json") | {"id": str(mutation.id)}
    return (
        current.model_dump(mode="json", include=set(editable))
        | mutation.fields.model_dump(mode="json", exclude_unset=True)
        | {"id": str(mutation.id)}
    )


def refusal_reason(refused: BatchRefused) -> str:
    """The code of the domain error a refused one-row write maps to (by constraint name, in
    ``errors.map_violation``), else ``id_taken`` (the primary key)."""
    cause = refused.__cause__
    mapped = map_violation(cause) if isinstance(cause, psycopg.errors.IntegrityError) else None
    return str(getattr(mapped, "code", ID_TAKEN))


def referenced_leads(mutations: Iterable[object]) -> set[UUID]:
    """The leads the batch's interaction and meeting creates name."""
    return {
        m.fields.lead_id
        for m in mutations
        if isinstance(m, InteractionMutation | MeetingMutation)
        and m.op == "create"
        and m.fields is not None
        and m.fields.lead_id is not None
    }


@dataclass
class _Writes:
    """One kind's pending writes. ``keys`` holds what a pending write holds or frees (a campaign
    name, a meeting owner), with the op of the write; a mutation touching one of its ids or keys
    flushes them first, except a meeting write of the same op, which can share the statement
    (a refused multi-row write is retried row by row, in the batch's order)."""

    creates: list[tuple[int, PipelineMutation, Row]] = field(default_factory=list)
    updates: list[tuple[int, PipelineMutation, Row]] = field(default_factory=list)
    deletes: list[tuple[int, PipelineMutation]] = field(default_factory=list)
    ids: set[UUID] = field(default_factory=set)
    keys: dict[str, set[str]] = field(default_factory=dict)

    def touches(self, entity_id: UUID, keys: Sequence[str], op: str, *, same_op_ok: bool) -> bool:
        if entity_id in self.ids:
            return True
        held = [self.keys.get(key, set()) for key in keys]
        return any(ops - {op} if same_op_ok else ops for ops in held)

    def add(
        self, index: int, mutation: PipelineMutation, row: Row | None, keys: Sequence[str]
    ) -> None:
        if row is None:
            self.deletes.append((index, mutation))
        elif mutation.op == "create":
            self.creates.append((index, mutation, row))
        else:
            self.updates.append((index, mutation, row))
        self.ids.add(mutation.id)
        for key in keys:
            self.keys.setdefault(key, set()).add(mutation.op)

    def done(self) -> list[tuple[int, PipelineMutation]]:
        return [*self.deletes, *((i, m) for i, m, _ in (*self.updates, *self.creates))]

    def clear(self) -> None:
        for held in (self.creates, self.updates, self.deletes, self.ids, self.keys):
            held.clear()


def _server_row(current: Campaign | Interaction | Meeting | None) -> ServerRow | None:
    if current is None:
        return None
    deleted = getattr(current, "deleted_at", None) is not None or (
        isinstance(current, Meeting) and current.status == "canceled"
    )
    return ServerRow(current.id, current.version, deleted)


@dataclass
class PipelineBatch:
    """The campaigns, interactions and meetings of one push: what the batch knows of them
    (loaded once, kept current as it writes), their pending writes, and the batch's shared
    results and conflicts. ``lead_of`` reads the batch's lead state; ``flush_leads`` sends the
    batch's pending lead writes."""

    uow: LeadsUow
    results: list[MutationResult | None]
    conflicts: list[NewConflict]
    lww: bool
    user_id: UUID | None
    lead_of: Callable[[UUID], Lead | None]
    flush_leads: Callable[[], None]
    campaigns: dict[UUID, Campaign] = field(default_factory=dict)
    names: dict[str, UUID] = field(default_factory=dict)
    interactions: dict[UUID, Interaction] = field(default_factory=dict)
    meetings: dict[UUID, Meeting] = field(default_factory=dict)
    campaign_writes: _Writes = field(default_factory=_Writes)
    interaction_writes: _Writes = field(default_factory=_Writes)
    meeting_writes: _Writes = field(default_factory=_Writes)

    @property
    def _store(self) -> PipelineBatchStore:
        return self.uow.pipeline_writes

    def load(self, mutations: Sequence[PipelineMutation], campaign_refs: set[UUID]) -> None:
        """Read (and lock) the rows the batch targets and the campaigns holding its names, a
        statement per kind and only for the kinds it holds."""
        by_kind: dict[str, list[UUID]] = {"campaign": [], "interaction": [], "meeting": []}
        for m in mutations:
            by_kind[m.entity].append(m.id)
        names = sorted(
            {
                m.fields.name
                for m in mutations
                if isinstance(m, CampaignMutation) and m.fields and m.fields.name is not None
            }
        )
        campaign_ids = sorted(set(by_kind["campaign"]) | campaign_refs, key=str)
        if campaign_ids:
            self.campaigns = self._store.campaigns(campaign_ids, lock=True)
        if names:
            holders = self._store.campaign_name_owners(names)
            self.campaigns |= {c.id: c for c in holders.values()}
            self.names = {name: c.id for name, c in holders.items()}
        if by_kind["interaction"]:
            self.interactions = self._store.interactions(by_kind["interaction"])
        if by_kind["meeting"]:
            self.meetings = self._store.meetings(by_kind["meeting"], lock=True)

    # ---- decisions ----------------------------------------------------------------------

    def campaign_known(self, campaign_id: UUID) -> bool:
        """Whether a lead may name this campaign: one of the tenant's (a pending create of the
        batch is written first, so the lead's write finds it)."""
        if campaign_id in self.campaign_writes.ids:
            self.flush_campaigns()
        return campaign_id in self.campaigns

    def decide(
        self, index: int, mutation: PipelineMutation, mutation_id: UUID
    ) -> MutationResult | None:
        """The mutation's result, or None when its write is pending (filled in by a flush)."""
        cmid = mutation.client_mutation_id
        if isinstance(mutation, InteractionMutation) and mutation.op != "create":
            return rejected(cmid, mutation.id, APPEND_ONLY)
        if mutation.op != "delete" and mutation.fields is None:
            return rejected(cmid, mutation.id, FIELDS_REQUIRED)
        if isinstance(mutation, CampaignMutation):
            return self._decide_campaign(index, mutation, mutation_id)
        if isinstance(mutation, InteractionMutation):
            return self._decide_interaction(index, mutation, mutation_id)
        return self._decide_meeting(index, mutation, mutation_id)

    def _live_lead(self, lead_id: UUID) -> bool:
        lead = self.lead_of(lead_id)
        return lead is not None and lead.deleted_at is None

    def _lead_ready(self, lead_id: UUID) -> bool:
        """Whether the lead is live (a lead the batch creates before is written first; one it
        deletes before is found deleted when the write joins it)."""
        if not self._live_lead(lead_id):
            self.flush_all()
        return self._live_lead(lead_id)

    def _classified(
        self,
        mutation: PipelineMutation,
        mutation_id: UUID,
        current: Campaign | Interaction | Meeting | None,
        natural_key_owner: UUID | None = None,
    ) -> MutationResult | Apply:
        decision = classify(
            mutation.op,
            base_version=mutation.base_version,
            current=_server_row(current),
            natural_key_owner=natural_key_owner,
            last_writer_wins=self.lww,
        )
        if isinstance(decision, ConflictFound):
            return self._conflict(mutation, mutation_id, decision)
        if isinstance(decision, Reject):
            return rejected(mutation.client_mutation_id, mutation.id, decision.reason)
        if decision.noop and current is not None:
            return applied(mutation.client_mutation_id, current.id, current.version)
        return decision

    def _conflict(
        self, mutation: PipelineMutation, mutation_id: UUID, decision: ConflictFound
    ) -> MutationResult:
        theirs = self._row_of(mutation, decision.existing_id)
        return stored_conflict(
            self.conflicts, mutation, mutation_id, decision, mine=mutation.fields, theirs=theirs
        )

    def _row_of(
        self, mutation: PipelineMutation, entity_id: UUID
    ) -> Campaign | Interaction | Meeting | None:
        if isinstance(mutation, CampaignMutation):
            return self.campaigns.get(entity_id)
        if isinstance(mutation, InteractionMutation):
            return self.interactions.get(entity_id)
        return self.meetings.get(entity_id)

    def _decide_campaign(
        self, index: int, mutation: CampaignMutation, mutation_id: UUID
    ) -> MutationResult | None:
        cmid, fields = mutation.client_mutation_id, mutation.fields
        name = fields.name if fields else None
        keys = [name] if name is not None else []
        if self.campaign_writes.touches(mutation.id, keys, mutation.op, same_op_ok=False):
            self.flush_campaigns()
        current = self.campaigns.get(mutation.id)
        owner = self.names.get(name) if name is not None and mutation.op == "create" else None
        decision = self._classified(mutation, mutation_id, current, owner)
        if not isinstance(decision, Apply):
            return decision
        if name is not None and self.names.get(name, mutation.id) != mutation.id:
            return rejected(cmid, mutation.id, CampaignNameTaken.code)
        row = _written(mutation, current, EDITABLE_CAMPAIGN_FIELDS)
        freed = [current.name] if current is not None else []
        self.campaign_writes.add(index, mutation, row, [*keys, *freed])
        return None

    def _decide_interaction(
        self, index: int, mutation: InteractionMutation, mutation_id: UUID
    ) -> MutationResult | None:
        fields = mutation.fields
        if fields is None:
            return rejected(mutation.client_mutation_id, mutation.id, FIELDS_REQUIRED)
        if not self._lead_ready(fields.lead_id):
            return rejected(mutation.client_mutation_id, mutation.id, LeadNotFound.code)
        if self.interaction_writes.touches(mutation.id, [], "create", same_op_ok=False):
            self.flush_timeline()
        decision = self._classified(mutation, mutation_id, self.interactions.get(mutation.id))
        if not isinstance(decision, Apply):
            return decision
        row = fields.model_dump(mode="json") | {"id": str(mutation.id)}
        self.interaction_writes.add(index, mutation, row, [])
        return None

    def _decide_meeting(
        self, index: int, mutation: MeetingMutation, mutation_id: UUID
    ) -> MutationResult | None:
        cmid, fields = mutation.client_mutation_id, mutation.fields
        if mutation.op == "create" and fields is not None:
            if fields.lead_id is None:
                return rejected(cmid, mutation.id, LEAD_REQUIRED)
            if not self._lead_ready(fields.lead_id):
                return rejected(cmid, mutation.id, LeadNotFound.code)
        if mutation.id in self.meeting_writes.ids:
            self.flush_timeline()
        current = self.meetings.get(mutation.id)
        if current is not None:
            owner = current.owner_user_id
        else:
            owner = (fields.owner_user_id if fields else None) or self.user_id
        keys = [str(owner)] if owner else []
        if self.meeting_writes.touches(mutation.id, keys, mutation.op, same_op_ok=True):
            self.flush_timeline()
            current = self.meetings.get(mutation.id)
        decision = self._classified(mutation, mutation_id, current)
        if not isinstance(decision, Apply):
            return decision
        if current is not None and current.status not in OPEN_MEETING:
            return rejected(cmid, mutation.id, MeetingNotOpen.code)
        if (
            current is not None
            and fields is not None
            and (
                fields.lead_id not in (None, current.lead_id)
                or fields.owner_user_id not in (None, current.owner_user_id)
            )
        ):
            return rejected(cmid, mutation.id, MEETING_FIXED)
        row = _written(mutation, current, EDITABLE_MEETING_FIELDS)
        if row is not None:
            row["owner_user_id"] = owner
        self.meeting_writes.add(index, mutation, row, keys)
        return None

    # ---- writes -------------------------------------------------------------------------

    def flush_all(self) -> None:
        """Send every pending write, in the order the foreign keys need: campaigns, leads, then
        the leads' interactions and meetings."""
        self.flush_campaigns()
        self.flush_leads()
        self.flush_timeline()

    def flush_campaigns(self) -> None:
        writes = self.campaign_writes
        if not writes.ids:
            return
        store = self._store
        written: dict[UUID, Campaign] = {}
        refused: dict[UUID, str] = {}
        if writes.deletes:
            written |= store.delete_campaigns([m.id for _, m in writes.deletes])
        if writes.updates:
            done, refused = _row_by_row(store.update_campaigns, [r for _, _, r in writes.updates])
            written |= done
        if writes.creates:
            rows = [r for _, _, r in writes.creates]
            written |= store.create_campaigns(rows, user_id=self.user_id)
            refused |= self._why_not_created(
                rows,
                written,
                lambda row: store.create_campaigns([row], user_id=self.user_id, skip_taken=False),
            )
        for campaign in written.values():
            before = self.campaigns.get(campaign.id)
            if before is not None and self.names.get(before.name) == campaign.id:
                del self.names[before.name]
            if campaign.deleted_at is None:
                self.names[campaign.name] = campaign.id
            self.campaigns[campaign.id] = campaign
        self._settle(writes, written, refused, "not_found")
        writes.clear()

    def flush_timeline(self) -> None:
        """Send the pending interactions and meetings (their leads' writes go first)."""
        if not (self.interaction_writes.ids or self.meeting_writes.ids):
            return
        self.flush_leads()
        self._flush_interactions()
        self._flush_meetings()

    def _flush_interactions(self) -> None:
        writes = self.interaction_writes
        if not writes.ids:
            return
        store = self._store
        rows = [r for _, _, r in writes.creates]
        written = store.create_interactions(rows, user_id=self.user_id)
        refused = self._why_not_created(
            rows,
            written,
            lambda row: store.create_interactions([row], user_id=self.user_id, skip_taken=False),
        )
        self.interactions |= written
        self._settle(writes, written, refused, LeadNotFound.code)
        writes.clear()

    def _flush_meetings(self) -> None:
        writes = self.meeting_writes
        if not writes.ids:
            return
        store = self._store
        written: dict[UUID, Meeting] = {}
        refused: dict[UUID, str] = {}
        if writes.deletes:
            written |= store.cancel_meetings([m.id for _, m in writes.deletes])
        if writes.updates:
            done, refused = _row_by_row(
                store.reschedule_meetings, [r for _, _, r in writes.updates]
            )
            written |= done
        if writes.creates:
            rows = [r for _, _, r in writes.creates]
            written |= store.create_meetings(rows)
            refused |= self._why_not_created(
                rows, written, lambda row: store.create_meetings([row], skip_taken=False)
            )
        self.meetings |= written
        self._settle(writes, written, refused, MeetingNotOpen.code)
        writes.clear()

    @staticmethod
    def _why_not_created(
        rows: Sequence[Row], written: dict[UUID, R], insert: Callable[[Row], dict[UUID, R]]
    ) -> dict[UUID, str]:
        """Why each create the multi-row insert skipped was skipped: it is tried alone, without
        skipping, and the constraint that refuses it names the reason (a write it makes after
        all, once a concurrent writer is gone, counts as written)."""
        refused: dict[UUID, str] = {}
        for row in rows:
            row_id = UUID(row["id"])
            if row_id in written:
                continue
            try:
                written |= insert(row)
            except BatchRefused as error:
                refused[row_id] = refusal_reason(error)
        return refused

    def _settle(
        self,
        writes: _Writes,
        written: dict[UUID, Any],
        refused: dict[UUID, str],
        missing: str,
    ) -> None:
        """Fill in the results of the sent writes and announce each applied change: its
        event, all of them in one pipelined exchange (the batch's one audit row, written by
        the push, covers them, as it covers its leads)."""
        events: list[EventDraft] = []
        for index, mutation in writes.done():
            cmid, row = mutation.client_mutation_id, written.get(mutation.id)
            if row is None:
                self.results[index] = rejected(cmid, mutation.id, refused.get(mutation.id, missing))
                continue
            events.append(_event(mutation, row))
            self.results[index] = applied(cmid, row.id, row.version)
        self.uow.announce_many(events)


def _event(mutation: PipelineMutation, row: Campaign | Interaction | Meeting) -> EventDraft:
    if isinstance(row, Campaign):
        return campaign_event(_CAMPAIGN_EVENTS[mutation.op], row)
    if isinstance(row, Interaction):
        return interaction_event(row)
    return meeting_event(_MEETING_EVENTS[mutation.op], row)


def _row_by_row(
    write: Callable[[Sequence[Row]], dict[UUID, R]], rows: Sequence[Row]
) -> tuple[dict[UUID, R], dict[UUID, str]]:
    """One multi-row write; when a constraint refuses it, the rows one at a time in the batch's
    order, so only the refused ones fail (with the reason their constraint names)."""
    try:
        return write(rows), {}
    except BatchRefused:
        pass
    written: dict[UUID, R] = {}
    refused: dict[UUID, str] = {}
    for row in rows:
        try:
            written |= write([row])
        except BatchRefused as error:
            refused[UUID(row["id"])] = refusal_reason(error)
    return written, refused
