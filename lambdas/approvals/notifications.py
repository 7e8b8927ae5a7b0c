"""In-app notification rows about approval requests (``alquimista_platform.notifications``),
for the activity feed. Outbox events for the same moments come with the governance core."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from lambdas.approvals.models import ApprovalRecord
from lambdas.shared.db import Connection

# The rows' recipients are chosen in notify_approval_v1 (migration 043) and their text lives once
# in approval_notice_v1 (058), which the decision function (decide_approval_v4) uses too.
_NOTIFY_SQL = """
SELECT alquimista_platform.notify_approval_v1(
    %(tenant)s, %(request)s, %(kind)s, %(user)s, %(role)s, %(permission)s, %(except_user)s
) AS written
"""

NotificationKind = Literal[
    "approval.requested", "approval.decided", "approval.expired", "approval.escalated"
]


def notify(
    conn: Connection,
    tenant_id: UUID,
    request: ApprovalRecord,
    kind: NotificationKind,
    *,
    user: UUID | None = None,
    role: str | None = None,
    permission: str | None = None,
    except_user: UUID | None = None,
) -> int:
    """In-app notifications about ``request`` for the tenant's active members, narrowed to one
    user, a role or the holders of a permission. The text is the request's summary and subject
    reference, never the protected content. Returns how many rows were written."""
    row = conn.execute(
        _NOTIFY_SQL,
        {
            "tenant": tenant_id,
            "request": request.id,
            "kind": kind,
            "user": user,
            "role": role,
            "permission": permission,
            "except_user": except_user,
        },
    ).fetchone()
    return int(row["written"]) if row else 0
