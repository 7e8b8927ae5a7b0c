"""Batched push from offline clients and the resolution of the conflicts it stores."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from lambdas.leads.errors import ConflictNotFound, DuplicateLead, InvalidLead, LeadSuppressed
from lambdas.leads.models import (
    EDITABLE_LEAD_FIELDS,
    Lead,
    LeadFields,
    Mutation,
    MutationResult,
)
from lambdas.leads.models import Conflict as ConflictRecord
from lambdas.leads.ports import LeadsUow, LeadsUowFactory
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
from lambdas.shared.errors import Conflict as ConflictError
from lambdas.shared.errors import ValidationFailed

MAX_BATCH = 1000


@dataclass
class _BatchState:
    """What the batch knows of the server, loaded once and kept current as it writes."""

    rows: dict[UUID, Lead]
    owners: dict[tuple[str, str], UUID]
    suppressed: set[str]

    def owner_of(self, email: str | None, phone: str | None) -> UUID | None:
        for key in (("email", email), ("phone", phone)):
            if key[1] and key in self.owners:
                return self.owners[key[0], key[1]]
        return None

    def wrote(self, lead: Lead) -> None:
        before = self.rows.get(lead.id)
        if before is not None:
            for key in (("email", before.email_normalized), ("phone", before.phone_e164)):
                if key[1] and self.owners.get((key[0], key[1])) == lead.id:
                    del self.owners[key[0], key[1]]
        if lead.deleted_at is None:
            if lead.email_normalized:
                self.owners["email", lead.email_normalized] = lead.id
            if lead.phone_e164:
                self.owners["phone", lead.phone_e164] = lead.id
        self.rows[lead.id] = lead


Prepared = tuple[LeadFields | None, str | None, str | None]


class SyncService:
    def __init__(self, uow_factory: LeadsUowFactory, *, suppression_key: bytes) -> None:
        self._uow = uow_factory
        self._key = suppression_key

    def push(
        self, mutations: Sequence[Mutation], *, device_id: str, user_id: UUID | None
    ) -> list[MutationResult]:
        """Apply a batch in one transaction, one result per mutation. A mutation id already
        applied returns its stored result and changes nothing, so a replayed batch is a no-op.
        The batch's ids, rows, natural keys and suppressions are read in a few statements up
        front; each applied mutation then costs one write."""
        if not 1 <= len(mutations) <= MAX_BATCH:
            raise ValidationFailed(f"a batch holds 1 to {MAX_BATCH} mutations")
        if len({m.client_mutation_id for m in mutations}) != len(mutations):
            raise ValidationFailed("a client mutation id appears twice in the batch")
        prepared = [self._prepare(m) for m in mutations]
        results: list[MutationResult] = []
        batch_id = uuid.uuid4()
        with self._uow() as uow:
            lww = uow.sync_settings.last_writer_wins()
            claimed = uow.mutations.claim_many(
                [(m.client_mutation_id, m.op, m.id) for m in mutations],
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
            state = self._load(uow, mutations, prepared, claimed)
            finished: list[tuple[UUID, str, dict[str, Any]]] = []
            for mutation, ready in zip(mutations, prepared, strict=True):
                cmid = mutation.client_mutation_id
                if cmid not in claimed:
                    results.append(MutationResult.model_validate(stored[cmid] | {"replayed": True}))
                    continue
                result = self._apply(uow, state, mutation, claimed[cmid], prepared=ready, lww=lww)
                finished.append(
                    (
                        claimed[cmid],
                        result.outcome,
                        result.model_dump(mode="json", exclude={"outcome", "replayed"}),
                    )
                )
                results.append(result)
            uow.mutations.finish_many(finished)
            if claimed:  # a batch that was all replays changed nothing and records nothing
                outcomes = [r.outcome for r in results if not r.replayed]
                uow.record(
                    "sync.batch_applied",
                    aggregate_type="sync_batch",
                    aggregate_id=str(batch_id),
                    payload={
                        "mutations": len(mutations),
                        "applied": outcomes.count("applied"),
                        "conflicts": outcomes.count("conflict"),
                        "rejected": outcomes.count("rejected"),
                        "replayed": len(results) - len(outcomes),
                    },
                )
            uow.commit()
        return results

    def _load(
        self,
        uow: LeadsUow,
        mutations: Sequence[Mutation],
        prepared: Sequence[Prepared | str],
        claimed: dict[str, UUID],
    ) -> _BatchState:
        todo = [
            (m, p)
            for m, p in zip(mutations, prepared, strict=True)
            if m.client_mutation_id in claimed and not isinstance(p, str)
        ]
        emails = [p[1] for _, p in todo if not isinstance(p, str) and p[1]]
        phones = [p[2] for _, p in todo if not isinstance(p, str) and p[2]]
        digests = [
            digest
            for _, p in todo
            if not isinstance(p, str)
            for _, digest in lead_digests(self._key, email=p[1], phone=p[2])
        ]
        return _BatchState(
            rows=uow.leads.get_many([m.id for m, _ in todo], lock=True) if todo else {},
            owners=uow.leads.live_owners(emails, phones) if emails or phones else {},
            suppressed=uow.suppression.suppressed(digests) if digests else set(),
        )

    @staticmethod
    def _prepare(mutation: Mutation) -> Prepared | str:
        """The normalised fields of a create or update, or the reason to reject it."""
        if mutation.op == "delete":
            return None, None, None
        if mutation.fields is None:
            return "fields are required"
        try:
            return normalized(mutation.fields)
        except InvalidLead as error:
            return error.code

    def _apply(
        self,
        uow: LeadsUow,
        state: _BatchState,
        mutation: Mutation,
        mutation_id: UUID,
        *,
        prepared: Prepared | str,
        lww: bool,
    ) -> MutationResult:
        cmid = mutation.client_mutation_id
        if isinstance(prepared, str):
            return _rejected(cmid, mutation.id, prepared)
        fields, email, phone = prepared
        if any(d in state.suppressed for _, d in lead_digests(self._key, email=email, phone=phone)):
            return _rejected(cmid, mutation.id, LeadSuppressed.code)
        current = state.rows.get(mutation.id)
        decision = classify(
            mutation.op,
            base_version=mutation.base_version,
            current=ServerRow(current.id, current.version, current.deleted_at is not None)
            if current
            else None,
            natural_key_owner=state.owner_of(email, phone) if mutation.op == "create" else None,
            last_writer_wins=lww,
        )
        if isinstance(decision, ConflictFound):
            return self._conflict(
                uow, state, mutation, mutation_id, decision=decision, fields=fields
            )
        if not isinstance(decision, Apply):
            return _rejected(cmid, mutation.id, decision.reason)
        if decision.noop and current is not None:
            return _applied(cmid, current.id, current.version)
        return self._write(uow, state, mutation, prepared)

    @staticmethod
    def _conflict(
        uow: LeadsUow,
        state: _BatchState,
        mutation: Mutation,
        mutation_id: UUID,
        *,
        decision: ConflictFound,
        fields: LeadFields | None,
    ) -> MutationResult:
        theirs = state.rows.get(decision.existing_id) or uow.leads.get(
            decision.existing_id, include_deleted=True
        )
        mine: dict[str, Any] = (
            fields.model_dump(mode="json") if fields is not None else {"deleted": True}
        )
        conflict_id = uow.conflicts.add(
            mutation_id=mutation_id,
            entity_id=decision.existing_id,
            kind=decision.kind,
            mine=mine,
            theirs=theirs.model_dump(mode="json") if theirs else {},
            base_version=mutation.base_version,
        )
        return MutationResult(
            client_mutation_id=mutation.client_mutation_id,
            outcome="conflict",
            id=decision.existing_id,
            version=theirs.version if theirs else None,
            conflict_id=conflict_id,
            reason=decision.kind,
        )

    @staticmethod
    def _write(
        uow: LeadsUow, state: _BatchState, mutation: Mutation, prepared: Prepared
    ) -> MutationResult:
        cmid = mutation.client_mutation_id
        fields, email, phone = prepared
        lead: Lead | None
        try:
            if fields is None:
                lead = uow.leads.soft_delete(mutation.id, expected_version=None)
            elif mutation.op == "create":
                lead = uow.leads.create(
                    mutation.id, fields, email_normalized=email, phone_e164=phone
                )
            else:
                lead = uow.leads.update(
                    mutation.id,
                    fields,
                    expected_version=None,
                    email_normalized=email,
                    phone_e164=phone,
                )
        except DuplicateLead as error:
            return _rejected(cmid, mutation.id, error.code)
        if lead is None:
            return _rejected(cmid, mutation.id, "not_found")
        state.wrote(lead)
        return _applied(cmid, lead.id, lead.version)

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
        """Settle an open conflict: keep_theirs keeps the server's lead, keep_mine writes the
        client's fields over it, merged writes the given fields."""
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
                    editable=EDITABLE_LEAD_FIELDS,
                )
            except ValueError as error:
                raise InvalidLead(str(error)) from error
            lead = uow.leads.get(conflict.entity_id, lock=True)
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
            uow.conflicts.resolve(conflict_id, resolution=resolution, resolved_by=user_id)
            uow.record(
                "sync_conflict.resolved",
                aggregate_type="sync_conflict",
                aggregate_id=str(conflict_id),
                payload={
                    "lead_id": conflict.entity_id,
                    "resolution": resolution,
                    "version": lead.version if lead else None,
                },
            )
            uow.commit()
        return MutationResult(
            client_mutation_id=str(conflict_id),
            outcome="applied",
            id=conflict.entity_id,
            version=lead.version if lead else None,
        )


def _rejected(cmid: str, entity_id: UUID, reason: str) -> MutationResult:
    return MutationResult(client_mutation_id=cmid, outcome="rejected", id=entity_id, reason=reason)


def _applied(cmid: str, entity_id: UUID, version: int) -> MutationResult:
    return MutationResult(client_mutation_id=cmid, outcome="applied", id=entity_id, version=version)
