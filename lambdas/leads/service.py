"""Use cases of leads: create, read, update and delete with versions, the list, and the
changes feed. Identifiers are normalised here; duplicates are decided by the database."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import ValidationError

from lambdas.leads.cursors import (
    decode_feed_cursor,
    decode_list_cursor,
    encode_feed_cursor,
    encode_list_cursor,
)
from lambdas.leads.errors import InvalidLead, LeadNotFound, LeadSuppressed
from lambdas.leads.models import ChangesPage, Lead, LeadFields, LeadFilters, LeadPage
from lambdas.leads.normalize import (
    InvalidIdentifier,
    normalize_email,
    normalize_phone,
    normalize_tax_id,
)
from lambdas.leads.ports import LeadsUow, LeadsUowFactory
from lambdas.leads.preconditions import PreconditionFailed, expected_version
from lambdas.leads.suppression import lead_digests

MAX_PAGE = 200


def normalized(fields: LeadFields) -> tuple[LeadFields, str | None, str | None]:
    """The fields with a canonical tax id, and the normalised e-mail and phone; InvalidLead
    naming the field that is not usable."""
    try:
        email = normalize_email(fields.email) if fields.email else None
        phone = normalize_phone(fields.phone) if fields.phone else None
        tax_id = normalize_tax_id(fields.company_tax_id)[1] if fields.company_tax_id else None
    except InvalidIdentifier as error:
        raise InvalidLead(error.message, details=[{"loc": [error.field]}]) from error
    return fields.model_copy(update={"company_tax_id": tax_id}), email, phone


def refuse_if_suppressed(uow: LeadsUow, key: bytes, email: str | None, phone: str | None) -> None:
    suppressed = uow.suppression.matches(lead_digests(key, email=email, phone=phone))
    if suppressed:
        raise LeadSuppressed(f"the {suppressed[0]} is on the suppression list")


class LeadService:
    def __init__(self, uow_factory: LeadsUowFactory, *, suppression_key: bytes) -> None:
        self._uow = uow_factory
        self._key = suppression_key

    def create(self, fields: LeadFields, *, lead_id: UUID | None = None) -> Lead:
        """Create a lead; LeadSuppressed if an identifier is on the suppression list,
        DuplicateLead (naming the existing lead) if a live lead holds one."""
        fields, email, phone = normalized(fields)
        with self._uow() as uow:
            refuse_if_suppressed(uow, self._key, email, phone)
            lead = uow.leads.create(lead_id, fields, email_normalized=email, phone_e164=phone)
            uow.record(
                "lead.created",
                aggregate_type="lead",
                aggregate_id=str(lead.id),
                payload={
                    "version": lead.version,
                    "status": lead.status,
                    "source": lead.source,
                    "legal_basis": lead.legal_basis,
                    "campanha_id": lead.campanha_id,
                    "assigned_to": lead.assigned_to,
                },
            )
            uow.commit()
        return lead

    def get(self, lead_id: UUID) -> Lead:
        with self._uow() as uow:
            lead = uow.leads.get(lead_id)
        if lead is None:
            raise LeadNotFound(f"lead {lead_id} not found")
        return lead

    def update(self, lead_id: UUID, changes: dict[str, Any], *, if_match: str | None) -> Lead:
        """Apply ``changes`` to the version the client read: 428 without If-Match, 412 with
        the current version when it is stale."""
        expected = expected_version(if_match)
        with self._uow() as uow:
            current = uow.leads.get(lead_id, lock=True)
            if current is None:
                raise LeadNotFound(f"lead {lead_id} not found")
            if current.version != expected:
                raise PreconditionFailed(current.version)
            try:
                merged = LeadFields.model_validate(current.fields().model_dump() | changes)
            except ValidationError as error:
                raise InvalidLead("the changes are not valid") from error
            fields, email, phone = normalized(merged)
            if (email, phone) != (current.email_normalized, current.phone_e164):
                refuse_if_suppressed(uow, self._key, email, phone)
            lead = uow.leads.update(
                lead_id,
                fields,
                expected_version=expected,
                email_normalized=email,
                phone_e164=phone,
            )
            if lead is None:
                raise LeadNotFound(f"lead {lead_id} not found")
            before, after = current.fields().model_dump(), lead.fields().model_dump()
            uow.record(
                "lead.updated",
                aggregate_type="lead",
                aggregate_id=str(lead.id),
                payload={
                    "version": lead.version,
                    "status": lead.status,
                    "changed_fields": sorted(k for k in after if after[k] != before[k]),
                },
            )
            uow.commit()
        return lead

    def delete(self, lead_id: UUID, *, if_match: str | None) -> Lead:
        expected = expected_version(if_match)
        with self._uow() as uow:
            lead = uow.leads.soft_delete(lead_id, expected_version=expected)
            if lead is None:
                current = uow.leads.get(lead_id)
                if current is None:
                    raise LeadNotFound(f"lead {lead_id} not found")
                raise PreconditionFailed(current.version)
            uow.record(
                "lead.deleted",
                aggregate_type="lead",
                aggregate_id=str(lead.id),
                payload={"version": lead.version},
            )
            uow.commit()
        return lead

    def page(self, filters: LeadFilters, *, cursor: str | None, limit: int) -> LeadPage:
        after = decode_list_cursor(cursor) if cursor else None
        limit = max(1, min(limit, MAX_PAGE))
        with self._uow() as uow:
            items = uow.leads.page(filters, after=after, limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        last = items[-1] if more else None
        return LeadPage(
            items=items,
            next_cursor=encode_list_cursor(last.created_at, last.id) if last else None,
        )

    def page_json(self, filters: LeadFilters, *, cursor: str | None, limit: int) -> str:
        """``page`` as the JSON text of a ``LeadPage``, printed by pydantic-core in one pass
        (the route passes it through instead of validating and encoding the page again)."""
        return self.page(filters, cursor=cursor, limit=limit).model_dump_json()

    def changes(self, *, cursor: str | None, limit: int) -> ChangesPage:
        """What changed after ``cursor`` (see ``changes_json``), parsed."""
        return ChangesPage.model_validate_json(self.changes_json(cursor=cursor, limit=limit))

    def changes_json(self, *, cursor: str | None, limit: int) -> str:
        """What changed after ``cursor`` in commit-safe order, as the JSON text of a
        ``ChangesPage`` (built by PostgreSQL; nothing is parsed on the way). A cursor issued
        before a purge that removed tombstones past its position cannot be continued (deletions
        it has not seen are gone): resync_required, and the client reads the feed again without
        a cursor."""
        after, seen_watermark = decode_feed_cursor(cursor) if cursor else ((0, 0), None)
        limit = max(1, min(limit, 1000))
        with self._uow() as uow:
            watermark = uow.feed.purge_watermark() or (0, 0)
            if seen_watermark is not None and seen_watermark < watermark and after < watermark:
                return ChangesPage(
                    changes=[],
                    cursor=encode_feed_cursor(0, 0, watermark),
                    has_more=True,
                    resync_required=True,
                ).model_dump_json()
            page = uow.feed.page_json(after=after, limit=limit)
        position = page.last or after
        # the cursor is base64url and the flag a literal: neither needs escaping
        return (
            f'{{"changes":{page.changes_json},'
            f'"cursor":"{encode_feed_cursor(*position, watermark)}",'
            f'"has_more":{"true" if page.has_more else "false"},"resync_required":false}}'
        )
