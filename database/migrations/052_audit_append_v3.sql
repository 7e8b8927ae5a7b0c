-- audit_append_v3: the append of audit_append_v2 (034/041) in one function and one statement.
-- Hashes, canonical JSON, checks and error messages are v2's byte for byte (the golden vectors
-- in tests/integration/test_audit_chain.py and test_audit_append_v2.py check them), so rows
-- written by v2 and v3 interleave in one chain and verify alike. v2 stays, unchanged, for
-- already deployed code and for the SQL functions that call it (audit_append_denied_v2,
-- decide_approval_v3).
--
-- What a v2 append did besides its own checks, and what v3 does instead (docs/benchmarks.md,
-- "Audit chain"):
-- 1. v2 called audit_chain_write_v1 through RETURN QUERY: a second plpgsql call (its own
--    executor start, its parameters, a tuplestore for the returned row). v3 holds the body.
-- 2. The body ran two statements on the tenant's head row: SELECT ... FOR UPDATE, then the
--    INSERT with the head's UPDATE in its WITH. v3 advances the head first, in one UPDATE whose
--    new values are computed from the locked row (RETURNING OLD/NEW, PostgreSQL 18), and inserts
--    the audit row from what it returns, in the same statement. The lock is the same row lock,
--    taken by the UPDATE: under READ COMMITTED a concurrent append waits for it, and PostgreSQL
--    then recomputes the new values from the committed head (EvalPlanQual), clock_timestamp()
--    included, so seq stays gap-free and occurred_at never goes back as seq goes up.
-- 3. Every head UPDATE fired the set_updated_at trigger (a plpgsql call per append). v3 sets
--    updated_at itself, to the row's occurred_at, and the trigger now fires only for an UPDATE
--    that leaves updated_at as it was (as v2's does), so other writers keep the convention.
-- 4. RETURNS TABLE (a set-returning function, its row materialised) became OUT parameters.

DROP TRIGGER set_updated_at ON alquimista_platform.audit_heads;
CREATE TRIGGER set_updated_at BEFORE UPDATE ON alquimista_platform.audit_heads
    FOR EACH ROW WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at)
    EXECUTE FUNCTION public.set_updated_at();

CREATE FUNCTION alquimista_platform.audit_append_v3(
    p_tenant_id uuid,
    p_actor_id uuid,
    p_actor_type text,
    p_action text,
    p_resource_type text,
    p_resource_id text,
    p_outcome text,
    p_request_id text,
    p_metadata jsonb,
    OUT id uuid,
    OUT seq bigint,
    OUT row_hash bytea,
    OUT occurred_at timestamptz
)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    scope text := nullif(current_setting('app.current_tenant_id', true), '');
    platform constant uuid := '00000000-0000-0000-0000-000000000000';
    new_id uuid := gen_random_uuid();
    payload bytea;
BEGIN
    -- Explicit, not left to RLS: the owner may be a role that bypasses it.
    -- (IS NOT DISTINCT FROM, never "=": an unscoped transaction has a NULL scope, and a NULL
    -- comparison would let the check pass)
    IF p_tenant_id IS NULL OR NOT coalesce(
            p_tenant_id IS NOT DISTINCT FROM scope::uuid
            OR (scope IS NULL AND p_tenant_id IS NOT DISTINCT FROM platform), false) THEN
        RAISE EXCEPTION 'audit append for tenant % outside its tenant scope', p_tenant_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_metadata IS NULL OR jsonb_typeof(p_metadata) <> 'object' THEN
        RAISE EXCEPTION 'audit metadata must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- v2's walk only when v3 refuses: it names the key or number at fault
    payload := sha256(convert_to(coalesce(
        alquimista_platform.audit_canonical_json_v3(p_metadata),
        alquimista_platform.audit_canonical_json_v2(p_metadata)), 'UTF8'));
    IF scope IS NULL THEN
        PERFORM set_config('app.current_tenant_id', platform::text, true);
    END IF;

    LOOP
        -- The sub-select is correlated with the head row, so it (and its clock) is evaluated
        -- for the row version the UPDATE locks, also when it had to wait for that version.
        WITH advanced AS (
            UPDATE alquimista_platform.audit_heads AS h
            SET (seq, row_hash, updated_at) = (
                SELECT h.seq + 1,
                       alquimista_platform.audit_row_hash_v1(h.row_hash,
                           alquimista_platform.audit_record_json_v1(
                               new_id, p_tenant_id, h.seq + 1, t.at, p_actor_id, p_actor_type,
                               p_action, p_resource_type, p_resource_id, p_outcome,
                               p_request_id, payload)),
                       t.at
                FROM (SELECT pg_catalog.clock_timestamp() AS at) AS t)
            WHERE h.tenant_id = p_tenant_id
            RETURNING old.row_hash AS prev_hash, new.seq, new.row_hash, new.updated_at AS at
        )
        INSERT INTO alquimista_platform.audit_logs AS l (
            id, tenant_id, actor_user_id, actor_type, action, resource_type, resource_id,
            outcome, request_id, metadata, occurred_at, seq, prev_hash, payload_hash, row_hash,
            hash_version)
        SELECT new_id, p_tenant_id, p_actor_id, p_actor_type, p_action, p_resource_type,
               p_resource_id, p_outcome, p_request_id, p_metadata, a.at, a.seq, a.prev_hash,
               payload, a.row_hash, 1
        FROM advanced AS a
        RETURNING l.seq, l.row_hash, l.occurred_at INTO seq, row_hash, occurred_at;
        EXIT WHEN FOUND;
        -- The tenant's first append (a concurrent first append makes this one wait, then
        -- find the row on the next pass).
        INSERT INTO alquimista_platform.audit_heads AS h (tenant_id, seq, row_hash)
        VALUES (p_tenant_id, 0,
                '\x0000000000000000000000000000000000000000000000000000000000000000')
        ON CONFLICT ON CONSTRAINT audit_heads_pkey DO NOTHING;
    END LOOP;

    IF scope IS NULL THEN
        PERFORM set_config('app.current_tenant_id', '', true);
    END IF;
    id := new_id;
END
$$;
