-- decide_approval_v2: v1's decision (026), returning also when the request was opened and when
-- it was decided (NULL while it stays pending). It calls v1 rather than repeating its body; the
-- request is read in a statement of its own, after v1's, so it sees what the decision's triggers
-- changed. The decision route answers them without reading the request again.
CREATE FUNCTION alquimista_platform.decide_approval_v2(
    p_request_id uuid, p_decider uuid, p_decision text, p_reason text
) RETURNS TABLE (
    decision_id uuid, status text, approvals integer, required_approvals integer,
    created_at timestamptz, decided_at timestamptz
)
LANGUAGE plpgsql AS $$
DECLARE
    decided record;
BEGIN
    SELECT * INTO decided
    FROM alquimista_platform.decide_approval_v1(p_request_id, p_decider, p_decision, p_reason);
    RETURN QUERY
    SELECT decided.decision_id, decided.status, decided.approvals, decided.required_approvals,
           r.created_at, r.decided_at
    FROM alquimista_platform.approval_requests AS r
    WHERE r.id = p_request_id
      AND r.tenant_id = nullif(current_setting('app.current_tenant_id', true), '')::uuid;
END
$$;
