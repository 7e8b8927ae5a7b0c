-- The decision route in one call. decide_approval_v3 does what the route's Python did around
-- decide_approval_v2, each in a round trip of its own: the decision (v1, the rules of 026 and
-- the quorum under the request's lock), its audit row (audit_append_v2, the request's tenant
-- chain, the decider as actor), its outbox event (outbox_append_v1, ``approval.decided`` v1 of
-- the event catalog) and, when the decision ends the request, the requester's notification.
-- It returns what v2 returns. A refusal raises as v1 does and writes nothing.
--
-- notify_approval_v1 holds the in-app notification rows about a request (their text and which
-- members get them) once: the Python writer (lambdas/approvals/notifications.py) and v3 call it.

CREATE FUNCTION alquimista_platform.notify_approval_v1(
    p_tenant_id uuid,
    p_request_id uuid,
    p_kind text,
    p_user uuid DEFAULT NULL,
    p_role text DEFAULT NULL,
    p_permission text DEFAULT NULL,
    p_except_user uuid DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    request record;
    written integer;
BEGIN
    SELECT r.id, r.status, r.summary, r.subject_kind, r.subject_id INTO request
    FROM alquimista_platform.approval_requests AS r
    WHERE r.tenant_id = p_tenant_id AND r.id = p_request_id;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    INSERT INTO alquimista_platform.notifications (tenant_id, user_id, kind, title, body, data)
    SELECT p_tenant_id, m.user_id, p_kind,
           CASE p_kind
               WHEN 'approval.requested' THEN 'Approval needed'
               WHEN 'approval.decided' THEN 'Approval request ' || request.status
               WHEN 'approval.expired' THEN 'Approval request expired'
               WHEN 'approval.escalated' THEN 'Approval request escalated'
           END,
           format('%s (%s %s)', request.summary, coalesce(request.subject_kind, 'None'),
                  coalesce(request.subject_id, 'None')),
           jsonb_build_object(
               'approval_request_id', request.id::text,
               'subject_kind', request.subject_kind,
               'subject_id', request.subject_id,
               'status', request.status)
    FROM alquimista_platform.memberships AS m
    JOIN alquimista_platform.users AS u ON u.id = m.user_id AND u.status = 'active'
    JOIN alquimista_platform.roles AS r ON r.id = m.role_id
    WHERE m.tenant_id = p_tenant_id AND m.status = 'active'
      AND m.user_id IS DISTINCT FROM p_except_user
      AND (p_user IS NULL OR m.user_id = p_user)
      AND (p_role IS NULL OR r.name = p_role)
      AND (p_permission IS NULL OR alquimista_platform.holds_permission_v1(
            m.tenant_id, m.user_id, p_permission));
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

CREATE FUNCTION alquimista_platform.decide_approval_v3(
    p_request_id uuid, p_decider uuid, p_decision text, p_reason text, p_request_ref text
) RETURNS TABLE (
    decision_id uuid, status text, approvals integer, required_approvals integer,
    created_at timestamptz, decided_at timestamptz
)
LANGUAGE plpgsql AS $$
DECLARE
    tenant uuid := nullif(current_setting('app.current_tenant_id', true), '')::uuid;
    decided record;
    request record;
    details jsonb;
BEGIN
    SELECT * INTO decided
    FROM alquimista_platform.decide_approval_v1(p_request_id, p_decider, p_decision, p_reason);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- a statement after v1's: it sees what the decision's triggers changed
    SELECT r.created_at, r.decided_at, r.requested_by INTO request
    FROM alquimista_platform.approval_requests AS r
    WHERE r.id = p_request_id AND r.tenant_id = tenant;
    details := jsonb_build_object(
        'approval_id', p_request_id::text,
        'decision_id', decided.decision_id::text,
        'decided_by', p_decider::text,
        'decision', p_decision,
        'status', decided.status,
        'approvals', decided.approvals,
        'required_approvals', decided.required_approvals);
    PERFORM alquimista_platform.audit_append_v2(
        tenant, p_decider, 'user', 'approval.decided', 'approval', p_request_id::text,
        'success', p_request_ref, details);
    PERFORM alquimista_platform.outbox_append_v1(
        gen_random_uuid(), tenant, 'approval', p_request_id::text, 'approval.decided', 1,
        details);
    IF decided.status <> 'pending' AND request.requested_by IS NOT NULL THEN
        PERFORM alquimista_platform.notify_approval_v1(
            tenant, p_request_id, 'approval.decided', p_user => request.requested_by);
    END IF;
    RETURN QUERY
    SELECT decided.decision_id, decided.status, decided.approvals, decided.required_approvals,
           request.created_at, request.decided_at;
END
$$;
