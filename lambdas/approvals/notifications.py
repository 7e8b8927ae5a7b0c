"""In-app notification rows about approval requests (``alquimista_platform.notifications``),
for the activity feed. Outbox events for the same moments come with the governance core."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from psycopg.types.json import Jsonb

from lambdas.approvals.models import ApprovalRecord
from lambdas.shared.db import Connection

_NOTIFY_SQL = """
INSERT INTO alquimista_platform.notifications (tenant_id, user_id, kind, title, body, data)
SELECT %(tenant)s, m.user_id, %(kind)s, %(title)s, %(body)s, %(data)s
FROM alquimista_platform.memberships AS m
JOIN alquimista_platform.users AS u ON u.id = m.user_id AND u.status = 'active'
JOIN alquimista_platform.roles AS r ON r.id = m.role_id
WHERE m.tenant_id = %(tenant)s AND m.status = 'active'
  AND m.user_id IS DISTINCT FROM %(except_user)s
  AND (%(user)s::uuid IS NULL OR m.user_id = %(user)s)
  AND (%(role)s::text IS NULL OR r.name = %(role)s)
  AND (%(permission)s::text IS NULL OR alquimista_platform.holds_permission_v1(
        m.tenant_id, m.user_id, %(permission)s))
"""

NotificationKind = Literal[
    "approval.requested", "approval.decided", "approval.expired", "approval.escalated"
]


def _notification_text(kind: NotificationKind, request: ApprovalRecord) -> tuple[str, str]:
    subject = f"{request.subject_kind} {request.subject_id}"
    titles = {
        "approval.requested": "Approval needed",
        "approval.decided": f"Approval request {request.status}",
        "approval.expired": "Approval request expired",
        "approval.escalated": "Approval request escalated",
    }
    return titles[kind], f"{request.summary} ({subject})"


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
    title, body = _notification_text(kind, request)
    cursor = conn.execute(
        _NOTIFY_SQL,
        {
            "tenant": tenant_id,
            "kind": kind,
            "title": title,
            "body": body,
            "data": Jsonb(
                {
                    "approval_request_id": str(request.id),
                    "subject_kind": request.subject_kind,
                    "subject_id": request.subject_id,
                    "status": request.status,
                }
            ),
            "user": user,
            "role": role,
            "permission": permission,
            "except_user": except_user,
        },
    )
    return cursor.rowcount
