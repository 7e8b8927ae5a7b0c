"""Batched push from offline clients and the resolution of the conflicts it stores."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from lambdas.leads.errors import (
    CampaignNotFound,
    ConflictNotFound,
    DuplicateLead,
    InvalidLead,
    LeadSuppressed,
)
from lambdas.leads.models import (
    EDITABLE_FIELDS,
    Lead,
    LeadFields,
    LeadWrite,
    Mutation,
    MutationResult,
    NewConflict,
    SyncMutation,
)
from lambdas.leads.models import Conflict as ConflictRecord
from lambdas.leads.ports import BatchRefused, LeadsUow, LeadsUowFactory
from lambdas.leads.service import normalized
from lambdas.leads.suppression import lead_digests
from lambdas.leads.sync import (
    Apply,
    ConflictFound,
    Resolution,
    ServerRow,
    classify,
    resolved_fields,
)
from lambdas.leads.sync_pipeline import (
    PipelineBatch,
    applied,
    referenced_leads,
    rejected,
    stored_conflict,
)
from lambdas.leads.sync_resolution import resolve_pipeline_conflict
from lambdas.shared.errors import Conflict as ConflictError
from lambdas.shared.errors import ValidationFailed

MAX_BATCH = 1000
LEAD_FIELDS = tuple(LeadFields.model_fields)


Prepared = tuple[LeadFields | None, str | None, str | None]
Key = tuple[str, str]


def _keys(email: str | None, phone: str | None) -> list[Key]:
    keys: list[Key] = []
    if email:
        keys.append(("email", email))
    if phone:
        keys.append(("phone", phone))
    return keys


@dataclass
class _BatchState:
    """What the batch knows of the server, loaded once and kept current as it writes."""

    rows: dict[UUID, Lead]
    owners: dict[Key, UUID]
    suppressed: set[str]

    def owner_of(self, email: str | None, phone: str | None) -> UUID | None:
        for key in _keys(email, phone):
            if key in self.owners:
                return self.owners[key]
        return None

    def others_owning(self, lead_id: UUID, email: str | None, phone: str | None) -> bool:
        return any(self.owners.get(key, lead_id) != lead_id for key in _keys(email, phone))

    def wrote(self, lead: Lead) -> None:
        before = self.rows.get(lead.id)
        if before is not None:
            for key in _keys(before.email_normalized, before.phone_e164):
                if self.owners.get(key) == lead.id:
                    del self.owners[key]
        if lead.deleted_at is None:
            for key in _keys(lead.email_normalized, lead.phone_e164):
                self.owners[key] = lead.id
        self.rows[lead.id] = lead


@dataclass
class _Pending:
    """Writes decided and not yet sent. They go as one multi-row statement per kind when the
    batch ends, or earlier when a mutation touches a row or a natural key a pending write
    changes (its decision must see that write), so each decision reads the server as the
    batch's earlier mutations left it."""

    creates: list[tuple[int, Mutation, LeadWrite]] = field(default_factory=list)
    updates: list[tuple[int, Mutation, LeadWrite]] = field(default_factory=list)
    deletes: list[tuple[int, Mutation]] = field(default_factory=list)
    ids: set[UUID] = field(default_factory=set)
    keys: set[Key] = field(default_factory=set)

    def touches(self, lead_id: UUID, keys: Sequence[Key]) -> bool:
        return lead_id in self.ids or any(key in self.keys for key in keys)

    def add(self, index: int, mutation: Mutation, prepared: Prepared, before: Lead | None) -> None:
        fields, email, phone = prepared
        if fields is None:
            self.deletes.append((index, mutation))
        elif mutation.op == "create":
            self.creates.append((index, mutation, (mutation.id, fields, email, phone)))
        else:
            self.updates.append((index, mutation, (mutation.id, fields, email, phone)))
        self.ids.add(mutation.id)
        self.keys.update(_keys(email, phone))
        if before is not None:  # the keys it frees
            self.keys.update(_keys(before.email_normalized, before.phone_e164))

    def __bool__(self) -> bool:
        return bool(self.ids)

    def clear(self) -> None:
        for held in (self.creates, self.updates, self.deletes, self.ids, self.keys):
            held.clear()


@dataclass
class _Batch:
    """One push in progress: its unit of work, what it knows of the server, its pending writes,
    the conflicts to store and the results so far (None: pending)."""

    uow: LeadsUow
    state: _BatchState
    results: list[MutationResult | None]
    lww: bool
    conflicts: list[NewConflict]
    pipeline: PipelineBatch
    pending: _Pending = field(default_factory=_Pending)


def _over(current: Lead, sent: LeadFields, email: str | None, phone: str | None) -> Prepared:
    """An update's write: the fields it sent over the lead's (as PATCH: a field left out keeps
    its value, an explicit null clears it), with the identifiers' normalised forms to match.
    Built without validating again: both sides are validated already."""
    given = sent.model_fields_set
    return (
        sent.model_copy(
            update={name: getattr(current, name) for name in LEAD_FIELDS if name not in given}
        ),
        email if "email" in given else current.email_normalized,
        phone if "phone" in given else current.phone_e164,
    )


def _conflict(
    batch: _Batch,
    mutation: Mutation,
    mutation_id: UUID,
    decision: ConflictFound,
    fields: LeadFields | None,
) -> MutationResult:
    """A conflict kept for the user with both versions (stored with the batch's others)."""
    theirs = batch.state.rows.get(decision.existing_id)
    return stored_conflict(
        batch.conflicts, mutation, mutation_id, decision, mine=fields, theirs=theirs
    )


def _write_refusal(
    batch: _Batch,
    mutation: Mutation,
    fields: LeadFields | None,
    email: str | None,
    phone: str | None,
) -> str | None:
    """Why a lead write the decision allows is refused: an update taking another live lead's
    e-mail or phone, or a campaign that is not one of the tenant's."""
    if mutation.op == "update" and batch.state.others_owning(mutation.id, email, phone):
        return DuplicateLead.code
    if fields is not None and fields.campanha_id is not None:
        return None if batch.pipeline.campaign_known(fields.campanha_id) else CampaignNotFound.code
    return None


def _campaign_refs(mutations: Sequence[SyncMutation], claimed: dict[str, UUID]) -> set[UUID]:
    """The campaigns the batch's lead writes name (a lead may only name one of the tenant's)."""
    return {
        m.fields.campanha_id
        for m in mutations
        if isinstance(m, Mutation)
        and m.client_mutation_id in claimed
        and m.fields is not None
        and m.fields.campanha_id is not None
    }


class SyncService:
    def __init__(self, uow_factory: LeadsUowFactory, *, suppression_key: bytes) -> None:
        self._uow = uow_factory
        self._key = suppression_key

    def push(
        self, mutations: Sequence[SyncMutation], *, device_id: str, user_id: UUID | None
    ) -> list[MutationResult]:
        """Apply a batch of lead, campaign, interaction and meeting mutations in one
        transaction, one result per mutation. A mutation id already applied returns its stored
        result and changes nothing, so a replayed batch is a no-op. The batch's ids, rows,
        natural keys and suppressions are read in a few statements up front; the writes go as
        one multi-row statement per entity and kind (creates, updates, deletes, conflicts), so a
        batch costs a handful of round trips, not one per mutation (the campaign, interaction
        and meeting ones: ``sync_pipeline``)."""
        if not 1 <= len(mutations) <= MAX_BATCH:
            raise ValidationFailed(f"a batch holds 1 to {MAX_BATCH} mutations")
        if len({m.client_mutation_id for m in mutations}) != len(mutations):
            raise ValidationFailed("a client mutation id appears twice in the batch")
        prepared = [self._prepare(m) if isinstance(m, Mutation) else None for m in mutations]
        results: list[MutationResult | None] = [None] * len(mutations)
        batch_id = uuid.uuid4()
        with self._uow() as uow:
            lww = uow.sync_settings.last_writer_wins()
            claimed = uow.mutations.claim_many(
                [(m.client_mutation_id, m.entity, m.op, m.id) for m in mutations],
                device_id=device_id,
                batch_id=batch_id,
                user_id=user_id,
            )
            replays = [
                m.client_mutation_id for m in mutations if m.client_mutation_id not in claimed
            ]
            stored = (
                uow.mutations.stored_many(device_id=device_id, cmids=replays) if replays else {}
            )
            others = [
                m
                for m in mutations
                if not isinstance(m, Mutation) and m.client_mutation_id in claimed
            ]
            state = self._load(uow, mutations, prepared, claimed, referenced_leads(others))
            conflicts: list[NewConflict] = []
            pipeline = PipelineBatch(
                uow,
                results,
                conflicts,
                lww=lww,
                user_id=user_id,
                lead_of=state.rows.get,
                flush_leads=lambda: self._flush(batch),
            )
            batch = _Batch(uow, state, results, lww, conflicts, pipeline)
            pipeline.load(others, _campaign_refs(mutations, claimed))
            for index, (mutation, ready) in enumerate(zip(mutations, prepared, strict=True)):
                cmid = mutation.client_mutation_id
                if cmid not in claimed:
                    results[index] = MutationResult.model_validate(
                        stored[cmid] | {"replayed": True}
                    )
                elif not isinstance(mutation, Mutation):
                    results[index] = batch.pipeline.decide(index, mutation, claimed[cmid])
                elif ready is not None:
                    results[index] = self._decide(batch, index, mutation, claimed[cmid], ready)
            batch.pipeline.flush_all()
            if batch.conflicts:
                uow.conflicts.add_many(batch.conflicts)
            done = [r for r in results if r is not None]
            uow.mutations.finish_many(
                [
                    (
                        claimed[r.client_mutation_id],
                        r.outcome,
                        r.model_dump(mode="json", exclude={"outcome", "replayed"}),
                    )
                    for r in done
                    if not r.replayed
                ]
            )
            if claimed:  # a batch that was all replays changed nothing and records nothing
                outcomes = [r.outcome for r in done if not r.replayed]
                uow.record(
                    "sync.batch_applied",
                    aggregate_type="sync_batch",
                    aggregate_id=str(batch_id),
                    payload={
                        "mutations": len(mutations),
                        "applied": outcomes.count("applied"),
                        "conflicts": outcomes.count("conflict"),
                        "rejected": outcomes.count("rejected"),
                        "replayed": len(done) - len(outcomes),
                    },
                )
            uow.commit()
        return [r for r in results if r is not None]

    def _load(
        self,
        uow: LeadsUow,
        mutations: Sequence[SyncMutation],
        prepared: Sequence[Prepared | str | None],
        claimed: dict[str, UUID],
        referenced: set[UUID],
    ) -> _BatchState:
        """The leads the batch targets or names (locked), the live holders of its natural keys
        and its suppressed identifiers."""
        todo = [
            (m, p)
            for m, p in zip(mutations, prepared, strict=True)
            if m.client_mutation_id in claimed and p is not None and not isinstance(p, str)
        ]
        emails = [p[1] for _, p in todo if not isinstance(p, str) and p[1]]
        phones = [p[2] for _, p in todo if not isinstance(p, str) and p[2]]
        digests = [
            digest
            for _, p in todo
            if not isinstance(p, str)
            for _, digest in lead_digests(self._key, email=p[1], phone=p[2])
        ]
        targets = sorted({m.id for m, _ in todo} | referenced, key=str)
        rows = uow.leads.get_many(targets, lock=True) if targets else {}
        owners = uow.leads.live_owners(emails, phones) if emails or phones else {}
        # the holders of natural keys the batch's creates may collide with: a create/create
        # conflict stores their row as "theirs"
        holders = {owner for owner in owners.values() if owner not in rows}
        if holders:
            rows |= uow.leads.get_many(sorted(holders, key=str), lock=True)
        return _BatchState(
            rows=rows,
            owners=owners,
            suppressed=uow.suppression.suppressed(digests) if digests else set(),
        )

    @staticmethod
    def _prepare(mutation: Mutation) -> Prepared | str:
        """The normalised fields of a create or update, or the reason to reject it. An update's
        fields are the ones it sent (an identifier it left out is neither normalised nor checked
        for duplicates or suppression: the lead keeps it)."""
        if mutation.op == "delete":
            return None, None, None
        if mutation.fields is None:
            return "fields are required"
        try:
            fields, email, phone = normalized(mutation.fields)
        except InvalidLead as error:
            return error.code
        if mutation.op == "update" and "company_tax_id" not in mutation.fields.model_fields_set:
            fields = mutation.fields  # as sent: normalized() marks the tax id set
        return fields, email, phone

    def _refusal(self, state: _BatchState, prepared: Prepared | str) -> str | None:
        """Why the mutation is rejected before any decision (invalid or suppressed), if it is."""
        if isinstance(prepared, str):
            return prepared
        _, email, phone = prepared
        if any(d in state.suppressed for _, d in lead_digests(self._key, email=email, phone=phone)):
            return LeadSuppressed.code
        return None

    def _decide(
        self,
        batch: _Batch,
        index: int,
        mutation: Mutation,
        mutation_id: UUID,
        prepared: Prepared | str,
    ) -> MutationResult | None:
        """The mutation's result, or None when its write is pending (filled in by _flush)."""
        cmid, state = mutation.client_mutation_id, batch.state
        refusal = self._refusal(state, prepared)
        if refusal is not None or isinstance(prepared, str):
            return rejected(cmid, mutation.id, refusal or "invalid")
        fields, email, phone = prepared
        if batch.pending.touches(mutation.id, _keys(email, phone)):
            self._flush(batch)
        current = state.rows.get(mutation.id)
        decision = classify(
            mutation.op,
            base_version=mutation.base_version,
            current=ServerRow(current.id, current.version, current.deleted_at is not None)
            if current
            else None,
            natural_key_owner=state.owner_of(email, phone) if mutation.op == "create" else None,
            last_writer_wins=batch.lww,
        )
        if isinstance(decision, ConflictFound):
            return _conflict(batch, mutation, mutation_id, decision, fields)
        if not isinstance(decision, Apply):
            return rejected(cmid, mutation.id, decision.reason)
        if decision.noop and current is not None:
            return applied(cmid, current.id, current.version)
        refusal = _write_refusal(batch, mutation, fields, email, phone)
        if refusal is not None:
            return rejected(cmid, mutation.id, refusal)
        if mutation.op == "update" and current is not None and fields is not None:
            prepared = _over(current, fields, email, phone)
        batch.pending.add(index, mutation, prepared, current)
        return None

    @staticmethod
    def _flush(batch: _Batch) -> None:
        """Send the pending writes, one statement per kind, and fill in their results. A
        multi-row update refused by a unique index (a concurrent writer took a key) is retried
        row by row, so only the mutations concerned are rejected."""
        uow, state, pending, results = batch.uow, batch.state, batch.pending, batch.results
        if not pending:
            return
        written: dict[UUID, Lead] = {}
        if pending.deletes:
            written |= uow.lead_writes.soft_delete_many([m.id for _, m in pending.deletes])
        if pending.updates:
            try:
                written |= uow.lead_writes.update_many([w for _, _, w in pending.updates])
            except BatchRefused:
                for _, _, (lead_id, fields, email, phone) in pending.updates:
                    try:
                        lead = uow.leads.update(
                            lead_id,
                            fields,
                            expected_version=None,
                            email_normalized=email,
                            phone_e164=phone,
                        )
                    except DuplicateLead:
                        continue
                    if lead is not None:
                        written[lead.id] = lead
        if pending.creates:
            written |= uow.lead_writes.create_many([w for _, _, w in pending.creates])
        done = [*pending.deletes, *((i, m) for i, m, _ in (*pending.updates, *pending.creates))]
        for index, mutation in done:
            lead = written.get(mutation.id)
            cmid = mutation.client_mutation_id
            if lead is None:
                reason = DuplicateLead.code if mutation.op != "delete" else "not_found"
                results[index] = rejected(cmid, mutation.id, reason)
                continue
            state.wrote(lead)
            results[index] = applied(cmid, lead.id, lead.version)
        pending.clear()

    def conflicts(self, *, limit: int) -> list[ConflictRecord]:
        """The tenant's open conflicts, oldest first, each with both versions."""
        with self._uow() as uow:
            return uow.conflicts.open_conflicts(limit=max(1, min(limit, 500)))

    def resolve(
        self,
        conflict_id: UUID,
        resolution: Resolution,
        *,
        merged: dict[str, Any] | None,
        user_id: UUID | None,
    ) -> MutationResult:
        """Settle an open conflict: keep_theirs keeps the server's row, keep_mine writes the
        client's fields over it, merged writes the given fields (a campaign's, interaction's or
        meeting's: ``sync_resolution``)."""
        with self._uow() as uow:
            conflict = uow.conflicts.get(conflict_id, lock=True)
            if conflict is None:
                raise ConflictNotFound(f"conflict {conflict_id} not found")
            if conflict.status != "open":
                raise ConflictError("the conflict is already resolved")
            try:
                changes = resolved_fields(
                    resolution,
                    mine=conflict.mine,
                    theirs=conflict.theirs,
                    merged=merged,
                    editable=EDITABLE_FIELDS[conflict.entity],
                )
            except ValueError as error:
                invalid = InvalidLead if conflict.entity == "lead" else ValidationFailed
                raise invalid(str(error)) from error
            if conflict.entity == "lead":
                version = self._resolve_lead(uow, conflict.entity_id, changes)
            else:
                deleted = resolution == "keep_mine" and conflict.mine == {"deleted": True}
                version = resolve_pipeline_conflict(uow, conflict, changes or {}, delete=deleted)
            uow.conflicts.resolve(conflict_id, resolution=resolution, resolved_by=user_id)
            uow.record(
                "sync_conflict.resolved",
                aggregate_type="sync_conflict",
                aggregate_id=str(conflict_id),
                payload={
                    "lead_id": conflict.entity_id if conflict.entity == "lead" else None,
                    "entity": conflict.entity,
                    "entity_id": conflict.entity_id,
                    "resolution": resolution,
                    "version": version,
                },
            )
            uow.commit()
        return MutationResult(
            client_mutation_id=str(conflict_id),
            outcome="applied",
            id=conflict.entity_id,
            version=version,
        )

    @staticmethod
    def _resolve_lead(uow: LeadsUow, lead_id: UUID, changes: dict[str, Any] | None) -> int | None:
        lead = uow.leads.get(lead_id, lock=True)
        if changes and lead is None:
            raise ConflictError("the lead was deleted; create it again instead")
        if changes and lead is not None:
            fields, email, phone = normalized(
                LeadFields.model_validate(lead.fields().model_dump(mode="json") | changes)
            )
            lead = uow.leads.update(
                lead.id,
                fields,
                expected_version=lead.version,
                email_normalized=email,
                phone_e164=phone,
            )
        return lead.version if lead else None
