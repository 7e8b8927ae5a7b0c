"""Leads rows written straight into a test database (as the owner, in the tenant's scope)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests.support.factories import TestTenant, _one, _scoped

Conn = psycopg.Connection[dict[str, Any]]


def create_lead(conn: Conn, tenant: TestTenant, *, full_name: str = "Lead Exemplo") -> uuid.UUID:
    with conn.transaction():
        _scoped(conn, tenant.id)
        row = _one(
            conn.execute(
                """
                INSERT INTO nigredo_leads.leads (tenant_id, full_name, legal_basis)
                VALUES (%s, %s, 'legitimate_interest') RETURNING id
                """,
                (tenant.id, full_name),
            ).fetchone()
        )
    return uuid.UUID(str(row["id"]))


def create_conflict(conn: Conn, tenant: TestTenant, lead_id: uuid.UUID) -> uuid.UUID:
    """An open update/update conflict on the lead (both versions hold only a name)."""
    with conn.transaction():
        _scoped(conn, tenant.id)
        row = _one(
            conn.execute(
                """
                INSERT INTO nigredo_leads.sync_conflicts (
                    tenant_id, entity, entity_id, kind, mine, theirs, base_version)
                VALUES (%s, 'lead', %s, 'update_update', %s, %s, 1) RETURNING id
                """,
                (tenant.id, lead_id, Jsonb({"full_name": "Mine"}), Jsonb({"full_name": "Theirs"})),
            ).fetchone()
        )
    return uuid.UUID(str(row["id"]))


def create_subject_request(conn: Conn, tenant: TestTenant, lead_id: uuid.UUID) -> uuid.UUID:
    with conn.transaction():
        _scoped(conn, tenant.id)
        row = _one(
            conn.execute(
                """
                INSERT INTO nigredo_leads.data_subject_requests (tenant_id, lead_id, kind, due_at)
                VALUES (%s, %s, 'access', now()) RETURNING id
                """,
                (tenant.id, lead_id),
            ).fetchone()
        )
    return uuid.UUID(str(row["id"]))


def create_campaign(conn: Conn, tenant: TestTenant, *, name: str | None = None) -> uuid.UUID:
    with conn.transaction():
        _scoped(conn, tenant.id)
        row = _one(
            conn.execute(
                """
                INSERT INTO nigredo_leads.campanhas (tenant_id, name, channel)
                VALUES (%s, %s, 'email') RETURNING id
                """,
                (tenant.id, name or f"campaign-{uuid.uuid4().hex[:8]}"),
            ).fetchone()
        )
    return uuid.UUID(str(row["id"]))


def create_meeting(conn: Conn, tenant: TestTenant, lead_id: uuid.UUID) -> uuid.UUID:
    """A 30-minute meeting with no owner, a year from now."""
    with conn.transaction():
        _scoped(conn, tenant.id)
        row = _one(
            conn.execute(
                """
                INSERT INTO nigredo_leads.agendamentos (tenant_id, lead_id, scheduled_for)
                VALUES (%s, %s, now() + interval '365 days') RETURNING id
                """,
                (tenant.id, lead_id),
            ).fetchone()
        )
    return uuid.UUID(str(row["id"]))
