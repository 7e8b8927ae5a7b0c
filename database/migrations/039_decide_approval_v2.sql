-- decide_approval_v2: v1's decision, returning also when the request was opened and when it was
-- decided (NULL while it stays pending), read after the decision's triggers ran. The decision
-- route answers them without reading the request again. v1 stays callable as it was.
CREATE FUNCTION alquimista_platform.decide_approval_v2(
    p_request_id uuid, p_decider uuid, p_decision text, p_reason text
) RETURNS TABLE (
    decision_id uuid, status text, approvals integer, required_approvals integer,
    created_at timestamptz, decided_at timestamptz
)
LANGUAGE plpgsql AS $$
DECLARE
    tenant uuid := nullif(current_setting('app.current_tenant_id', true), '')::uuid;
    new_id uuid;
BEGIN
    INSERT INTO alquimista_platform.approval_decisions
        (tenant_id, approval_request_id, decided_by, decision, reason, comment)
    VALUES (tenant, p_request_id, p_decider, p_decision, p_reason, p_reason)
    RETURNING id INTO new_id;
    RETURN QUERY
    SELECT new_id, r.status,
           (SELECT count(*)::integer FROM alquimista_platform.approval_decisions AS d
            WHERE d.tenant_id = r.tenant_id AND d.approval_request_id = r.id
              AND d.decision = 'approved'),
           r.required_approvals::integer, r.created_at, r.decided_at
    FROM alquimista_platform.approval_requests AS r
    WHERE r.id = p_request_id AND r.tenant_id = tenant;
END
$$;
