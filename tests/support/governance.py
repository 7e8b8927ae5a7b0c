"""Policy rules and approval requests written straight through the repositories (as the owner,
scoped to the tenant), for tests that need them to exist before the request under test."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from lambdas.approvals.models import NewApprovalRequest
from lambdas.approvals.repository import ApprovalRepository
from lambdas.policies.models import RuleDraft
from lambdas.policies.repository import PolicyRepository
from lambdas.shared.db import set_tenant
from tests.support.factories import TestTenant, TestUser

Conn = psycopg.Connection[dict[str, Any]]

RULE_DRAFT = RuleDraft(
    name="outreach needs one approval",
    effect="require_approval",
    required_approvals=1,
    matcher={"subject_kinds": ["lead.outreach"]},
)


def create_rule(conn: Conn, tenant: TestTenant, draft: RuleDraft = RULE_DRAFT) -> uuid.UUID:
    with conn.transaction():
        set_tenant(conn, tenant.id)
        rule = PolicyRepository(conn, tenant.id).create(draft, actor_id=tenant.user("admin").id)
    return rule.rule_id


def create_approval(
    conn: Conn, tenant: TestTenant, requester: TestUser, *, quorum: int = 1
) -> uuid.UUID:
    """A pending request for a fresh subject, asked by ``requester``."""
    with conn.transaction():
        set_tenant(conn, tenant.id)
        record, _ = ApprovalRepository(conn, tenant.id).find_or_create(
            NewApprovalRequest(
                subject_kind="lead.outreach",
                subject_id=str(uuid.uuid4()),
                action_type="email.send",
                summary="First e-mail to a lead",
                requested_by=requester.id,
                required_approvals=quorum,
                expires_at=datetime.now(UTC) + timedelta(hours=1),
            )
        )
    return record.id
