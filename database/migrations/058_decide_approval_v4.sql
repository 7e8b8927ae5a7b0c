-- A cheaper decision, the same rules. What a decision cost in PostgreSQL beyond the rules
-- themselves (the triggers of 026, which stay the one place every writer is checked):
--
-- * approval_decisions_apply ran its UPDATE (six indexes, two triggers, the row-level security
--   policy) for every approval, also below the quorum, where it matched no row. It now reads the
--   count and the quorum first, under the row lock the insert guard already holds, and updates
--   only when the request ends.
-- * decide_approval_v3 called v1 (whose result is materialised and which reads the request and
--   counts the approvals), read the request again, and called notify_approval_v1, which reads
--   it a third time and joins memberships, users and roles under four optional filters (one
--   generic plan for every caller). decide_approval_v4 inserts the decision, reads the request
--   and the count once, and writes the requester's notification itself.
--
-- The notification's text (title, body, data) lives once, in approval_notice_v1, used by v4 and
-- by notify_approval_v1, whose arguments and rows do not change.

CREATE FUNCTION alquimista_platform.approval_notice_v1(
    p_kind text,
    p_request_id uuid,
    p_status text,
    p_summary text,
    p_subject_kind text,
    p_subject_id text
) RETURNS TABLE (title text, body text, data jsonb)
LANGUAGE sql STABLE AS $$
    SELECT CASE p_kind
               WHEN 'approval.requested' THEN 'Approval needed'
               WHEN 'approval.decided' THEN 'Approval request ' || p_status
               WHEN 'approval.expired' THEN 'Approval request expired'
               WHEN 'approval.escalated' THEN 'Approval request escalated'
           END,
           format('%s (%s %s)', p_summary, coalesce(p_subject_kind, 'None'),
                  coalesce(p_subject_id, 'None')),
           jsonb_build_object(
               'approval_request_id', p_request_id::text,
               'subject_kind', p_subject_kind,
               'subject_id', p_subject_id,
               'status', p_status)
$$;

CREATE OR REPLACE FUNCTION alquimista_platform.notify_approval_v1(
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
    SELECT p_tenant_id, m.user_id, p_kind, n.title, n.body, n.data
    FROM alquimista_platform.memberships AS m
    JOIN alquimista_platform.users AS u ON u.id = m.user_id AND u.status = 'active'
    JOIN alquimista_platform.roles AS r ON r.id = m.role_id
    CROSS JOIN alquimista_platform.approval_notice_v1(
        p_kind, request.id, request.status, request.summary, request.subject_kind,
        request.subject_id) AS n
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

-- The decision's consequence (026): any rejection rejects; approvals reaching the quorum
-- approve. The insert guard has locked the request row, so no other decision on it lands
-- before this transaction ends, and the count read here is the one the update guard re-checks.
CREATE OR REPLACE FUNCTION alquimista_platform.approval_decisions_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    reached boolean;
BEGIN
    IF NEW.decision = 'rejected' THEN
        UPDATE alquimista_platform.approval_requests
        SET status = 'rejected'
        WHERE id = NEW.approval_request_id AND tenant_id = NEW.tenant_id AND status = 'pending';
        RETURN NULL;
    END IF;
    SELECT (SELECT count(*) FROM alquimista_platform.approval_decisions AS d
            WHERE d.tenant_id = r.tenant_id AND d.approval_request_id = r.id
              AND d.decision = 'approved') >= r.required_approvals
    INTO reached
    FROM alquimista_platform.approval_requests AS r
    WHERE r.id = NEW.approval_request_id AND r.tenant_id = NEW.tenant_id
      AND r.status = 'pending';
    IF reached THEN
        UPDATE alquimista_platform.approval_requests
        SET status = 'approved'
        WHERE id = NEW.approval_request_id AND tenant_id = NEW.tenant_id AND status = 'pending';
    END IF;
    RETURN NULL;
END
$$;

-- The decision route in one call, as v3 (043): the decision (its rules are the triggers of
-- 026), its audit row (audit_append_v3, the request's tenant chain, the decider as actor), its
-- ``approval.decided`` v1 outbox event and, when the decision ends the request, the requester's
-- notification (if still an active member, as notify_approval_v1 would choose). Returns what
-- v3 returns; a refusal raises and writes nothing. SECURITY INVOKER: RLS stays in force.
CREATE FUNCTION alquimista_platform.decide_approval_v4(
    p_request_id uuid, p_decider uuid, p_decision text, p_reason text, p_request_ref text
) RETURNS TABLE (
    decision_id uuid, status text, approvals integer, required_approvals integer,
    created_at timestamptz, decided_at timestamptz
)
LANGUAGE plpgsql AS $$
DECLARE
    tenant uuid := nullif(current_setting('app.current_tenant_id', true), '')::uuid;
    new_id uuid;
    request record;
    details jsonb;
BEGIN
    INSERT INTO alquimista_platform.approval_decisions
        (tenant_id, approval_request_id, decided_by, decision, reason, comment)
    VALUES (tenant, p_request_id, p_decider, p_decision, p_reason, p_reason)
    RETURNING id INTO new_id;
    -- a statement after the insert: it sees what the decision's triggers changed
    SELECT r.status, r.required_approvals, r.created_at, r.decided_at, r.requested_by,
           r.summary, r.subject_kind, r.subject_id,
           (SELECT count(*)::integer FROM alquimista_platform.approval_decisions AS d
            WHERE d.tenant_id = r.tenant_id AND d.approval_request_id = r.id
              AND d.decision = 'approved') AS approvals
    INTO request
    FROM alquimista_platform.approval_requests AS r
    WHERE r.id = p_request_id AND r.tenant_id = tenant;
    details := jsonb_build_object(
        'approval_id', p_request_id::text,
        'decision_id', new_id::text,
        'decided_by', p_decider::text,
        'decision', p_decision,
        'status', request.status,
        'approvals', request.approvals,
        'required_approvals', request.required_approvals);
    PERFORM alquimista_platform.audit_append_v3(
        tenant, p_decider, 'user', 'approval.decided', 'approval', p_request_id::text,
        'success', p_request_ref, details);
    PERFORM alquimista_platform.outbox_append_v1(
        gen_random_uuid(), tenant, 'approval', p_request_id::text, 'approval.decided', 1,
        details);
    IF request.status <> 'pending' AND request.requested_by IS NOT NULL THEN
        INSERT INTO alquimista_platform.notifications
            (tenant_id, user_id, kind, title, body, data)
        SELECT tenant, m.user_id, 'approval.decided', n.title, n.body, n.data
        FROM alquimista_platform.memberships AS m
        JOIN alquimista_platform.users AS u ON u.id = m.user_id AND u.status = 'active'
        CROSS JOIN alquimista_platform.approval_notice_v1(
            'approval.decided', p_request_id, request.status, request.summary,
            request.subject_kind, request.subject_id) AS n
        WHERE m.tenant_id = tenant AND m.user_id = request.requested_by AND m.status = 'active';
    END IF;
    decision_id := new_id;
    status := request.status;
    approvals := request.approvals;
    required_approvals := request.required_approvals;
    created_at := request.created_at;
    decided_at := request.decided_at;
    RETURN NEXT;
END
$$;
