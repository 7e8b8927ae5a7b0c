"""Audit rows for tests, written the one way production writes them (audit_append_v1)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from lambdas.shared.audit import AuditRecord, AuditWriter
from tests.support.database import TestDatabase

Conn = psycopg.Connection[dict[str, Any]]


@contextmanager
def scoped(db: TestDatabase, tenant_id: uuid.UUID) -> Iterator[Conn]:
    """A runtime-role transaction scoped to ``tenant_id``; committed on success."""
    with db.runtime() as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (str(tenant_id),))
        yield conn
        conn.commit()


def append_audit(
    db: TestDatabase,
    tenant_id: uuid.UUID,
    count: int,
    *,
    actor_id: uuid.UUID | None = None,
    action: str = "agent.activated",
    resource_type: str = "agent",
) -> list[AuditRecord]:
    with scoped(db, tenant_id) as conn:
        writer = AuditWriter(conn, tenant_id=tenant_id, actor_id=actor_id, request_id="req-test")
        return [
            writer.append(
                action,
                resource_type=resource_type,
                resource_id=f"{resource_type}-{i}",
                details={"n": i, "ref_id": str(uuid.uuid4())},
            )
            for i in range(count)
        ]


@contextmanager
def tampering(owner: Conn) -> Iterator[Conn]:
    """The owner with triggers off (a superuser's act, outside ordinary use)."""
    owner.execute("SET session_replication_role = replica")
    try:
        yield owner
    finally:
        owner.execute("SET session_replication_role = origin")
