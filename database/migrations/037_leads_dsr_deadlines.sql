-- LGPD Art. 19: a data subject request is answered within 15 days. The scheduled job counts,
-- across tenants, the open requests due within a window, and the DSR deadline alarm fires on
-- that count. Tenant by tenant (RLS stays on; like public.expire_trials), restoring the
-- caller's tenant; it returns a number only, never a request or a person.
CREATE FUNCTION nigredo_leads.dsr_due_soon_v1(p_hours integer DEFAULT 48) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    caller_tenant text := current_setting('app.current_tenant_id', true);
    tenant        uuid;
    batch         bigint;
    total         bigint := 0;
BEGIN
    FOR tenant IN SELECT id FROM alquimista_platform.tenants ORDER BY id LOOP
        PERFORM set_config('app.current_tenant_id', tenant::text, true);
        SELECT count(*) INTO batch
        FROM nigredo_leads.data_subject_requests AS r
        WHERE r.tenant_id = tenant AND r.status IN ('open', 'in_progress')
          AND r.due_at < now() + make_interval(hours => p_hours);
        total := total + batch;
    END LOOP;
    PERFORM set_config('app.current_tenant_id', coalesce(caller_tenant, ''), true);
    RETURN total;
END
$$;
