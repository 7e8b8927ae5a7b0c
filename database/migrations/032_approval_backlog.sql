-- The approval backlog across tenants, for the sweeper's metrics (pending count, oldest
-- pending age): like sweep_approvals_v1, it scopes itself to each tenant in turn, so the
-- runtime role (no BYPASSRLS) reads each tenant's rows under that tenant's policy, and it
-- restores the caller's scope. Counts only: no request content leaves the function.
CREATE FUNCTION alquimista_platform.approval_backlog_v1()
RETURNS TABLE (pending bigint, oldest_created_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    caller_tenant text := current_setting('app.current_tenant_id', true);
    tenant        uuid;
    tenant_count  bigint;
    tenant_oldest timestamptz;
BEGIN
    pending := 0;
    oldest_created_at := NULL;
    FOR tenant IN SELECT t.id FROM alquimista_platform.tenants AS t ORDER BY t.id LOOP
        PERFORM set_config('app.current_tenant_id', tenant::text, true);
        SELECT count(*), min(r.created_at) INTO tenant_count, tenant_oldest
        FROM alquimista_platform.approval_requests AS r
        WHERE r.tenant_id = tenant AND r.status = 'pending';
        pending := pending + tenant_count;
        IF tenant_oldest IS NOT NULL
           AND (oldest_created_at IS NULL OR tenant_oldest < oldest_created_at) THEN
            oldest_created_at := tenant_oldest;
        END IF;
    END LOOP;
    PERFORM set_config('app.current_tenant_id', coalesce(caller_tenant, ''), true);
    RETURN NEXT;
END
$$;
