"""Batched push from offline clients and the resolution of the conflicts it stores."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
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
from lambdas.leads.ports import LeadsUow, LeadsUowFactory
from lambdas.leads.service import normalized, refuse_if_suppressed
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


class SyncService:
    def __init__(self, uow_factory: LeadsUowFactory, *, suppression_key: bytes) -> None:
        self._uow = uow_factory
        self._key = suppression_key

    def push(
        self, mutations: Sequence[Mutation], *, device_id: str, user_id: UUID | None
    ) -> list[MutationResult]:
        """Apply a batch in one transaction, one result per mutation. A mutation id already
        applied returns its stored result and changes nothing, so a replayed batch is a no-op."""
        if not 1 <= len(mutations) <= MAX_BATCH:
            raise ValidationFailed(f"a batch holds 1 to {MAX_BATCH} mutations")
        batch_id = uuid.uuid4()
        results: list[MutationResult] = []
        with self._uow() as uow:
            lww = uow.sync_settings.last_writer_wins()
            for mutation in mutations:
                cmid = mutation.client_mutation_id
                claimed = uow.mutations.claim(
                    device_id=device_id,
                    client_mutation_id=cmid,
                    batch_id=batch_id,
                    op=mutation.op,
                    entity_id=mutation.id,
                    user_id=user_id,
                )
                if claimed is None:
                    stored = uow.mutations.stored(device_id=device_id, client_mutation_id=cmid)
                    results.append(MutationResult.model_validate(stored | {"replayed": True}))
                    continue
                result = self._apply(uow, mutation, claimed, lww)
                uow.mutations.finish(
                    claimed,
                    outcome=result.outcome,
                    result=result.model_dump(mode="json", exclude={"outcome", "replayed"}),
                )
                results.append(result)
            uow.commit()
        return results

    def _apply(
        self, uow: LeadsUow, mutation: Mutation, mutation_id: UUID, lww: bool
    ) -> MutationResult:
        cmid = mutation.client_mutation_id
        prepared = self._prepare(uow, mutation)
        if isinstance(prepared, str):
            return _rejected(cmid, mutation.id, prepared)
        fields, email, phone = prepared
        current = uow.leads.get(mutation.id, include_deleted=True, lock=True)
        owner = (
            uow.leads.find_live_by_identifiers(email, phone)
            if mutation.op == "create" and (email or phone)
            else None
        )
        decision = classify(
            mutation.op,
            base_version=mutation.base_version,
            current=ServerRow(current.id, current.version, current.deleted_at is not None)
            if current
            else None,
            natural_key_owner=owner,
            last_writer_wins=lww,
        )
        if isinstance(decision, ConflictFound):
            return self._conflict(uow, mutation, mutation_id, decision, fields)
        if not isinstance(decision, Apply):
            return _rejected(cmid, mutation.id, decision.reason)
        if decision.noop and current is not None:
            return _applied(cmid, current.id, current.version)
        return self._write(uow, mutation, fields, email, phone)

    def _prepare(
        self, uow: LeadsUow, mutation: Mutation
    ) -> tuple[LeadFields | None, str | None, str | None] | str:
        """The normalised fields of a create or update, or the reason to reject it."""
        if mutation.op == "delete":
            return None, None, None
        if mutation.fields is None:
            return "fields are required"
        try:
            fields, email, phone = normalized(mutation.fields)
            refuse_if_suppressed(uow, self._key, email, phone)
        except (InvalidLead, LeadSuppressed) as error:
            return error.code
        return fields, email, phone

    @staticmethod
    def _conflict(
        uow: LeadsUow,
        mutation: Mutation,
        mutation_id: UUID,
        decision: ConflictFound,
        fields: LeadFields | None,
    ) -> MutationResult:
        theirs = uow.leads.get(decision.existing_id, include_deleted=True)
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
        uow: LeadsUow,
        mutation: Mutation,
        fields: LeadFields | None,
        email: str | None,
        phone: str | None,
    ) -> MutationResult:
        cmid = mutation.client_mutation_id
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
        return _applied(cmid, lead.id, lead.version)

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
