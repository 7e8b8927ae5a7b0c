-- One body for writing a row to a tenant's chain: audit_append_v1 (024) and audit_append_v2
-- (034) each carried their own copy of it (take the tenant's head lock, create the head on the
-- tenant's first append, hash, insert, advance the head). Both now check their own arguments
-- and call audit_chain_write_v1. The hashes are those of 024 byte for byte (the golden vectors
-- in tests/integration/test_audit_chain.py check them), so chains written before and after
-- this migration verify alike.
--
-- The row and the head's advance are written by one statement (the INSERT in a WITH of the
-- head's UPDATE) after the head lock: two statements per append instead of three.
--
-- SECURITY INVOKER and no SET clause: it runs with the rights and the search_path of the
-- SECURITY DEFINER append functions that call it, and names pg_catalog functions explicitly.
-- It checks neither the tenant scope nor the metadata, so nobody but the owner may call it.
CREATE FUNCTION alquimista_platform.audit_chain_write_v1(
    p_tenant_id uuid,
    p_actor_id uuid,
    p_actor_type text,
    p_action text,
    p_resource_type text,
    p_resource_id text,
    p_outcome text,
    p_request_id text,
    p_metadata jsonb,
    p_payload_hash bytea,
    OUT id uuid,
    OUT seq bigint,
    OUT row_hash bytea,
    OUT occurred_at timestamptz
)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
DECLARE
    head_seq bigint;
    head_hash bytea;
BEGIN
    SELECT h.seq, h.row_hash INTO head_seq, head_hash
    FROM alquimista_platform.audit_heads AS h
    WHERE h.tenant_id = p_tenant_id
    FOR UPDATE;
    IF NOT FOUND THEN
        -- The tenant's first append (a concurrent first append makes this one wait, then
        -- find the row).
        INSERT INTO alquimista_platform.audit_heads AS h (tenant_id, seq, row_hash)
        VALUES (p_tenant_id, 0,
                '\x0000000000000000000000000000000000000000000000000000000000000000')
        ON CONFLICT ON CONSTRAINT audit_heads_pkey DO NOTHING;
        SELECT h.seq, h.row_hash INTO STRICT head_seq, head_hash
        FROM alquimista_platform.audit_heads AS h
        WHERE h.tenant_id = p_tenant_id
        FOR UPDATE;
    END IF;

    id := pg_catalog.gen_random_uuid();
    seq := head_seq + 1;
    -- Taken under the lock, so a tenant's occurred_at never goes back as seq goes up.
    occurred_at := pg_catalog.clock_timestamp();
    row_hash := alquimista_platform.audit_row_hash_v1(head_hash,
        alquimista_platform.audit_record_json_v1(
            id, p_tenant_id, seq, occurred_at, p_actor_id, p_actor_type, p_action,
            p_resource_type, p_resource_id, p_outcome, p_request_id, p_payload_hash));

    WITH appended AS (
        INSERT INTO alquimista_platform.audit_logs AS l (
            id, tenant_id, actor_user_id, actor_type, action, resource_type, resource_id,
            outcome, request_id, metadata, occurred_at, seq, prev_hash, payload_hash, row_hash,
            hash_version)
        VALUES (
            id, p_tenant_id, p_actor_id, p_actor_type, p_action, p_resource_type,
            p_resource_id, p_outcome, p_request_id, p_metadata, occurred_at, seq, head_hash,
            p_payload_hash, row_hash, 1)
        RETURNING l.tenant_id, l.seq, l.row_hash
    )
    UPDATE alquimista_platform.audit_heads AS h
    SET seq = a.seq, row_hash = a.row_hash
    FROM appended AS a
    WHERE h.tenant_id = a.tenant_id;
END
$$;

REVOKE EXECUTE ON FUNCTION alquimista_platform.audit_chain_write_v1(
    uuid, uuid, text, text, text, text, text, text, jsonb, bytea) FROM PUBLIC;

CREATE OR REPLACE FUNCTION alquimista_platform.audit_append_v1(
    p_tenant_id uuid,
    p_actor_id uuid,
    p_actor_type text,
    p_action text,
    p_resource_type text,
    p_resource_id text,
    p_outcome text,
    p_request_id text,
    p_metadata jsonb
) RETURNS TABLE (id uuid, seq bigint, row_hash bytea, occurred_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad_key text;
BEGIN
    -- Explicit, not left to RLS: the owner may be a role that bypasses it.
    IF p_tenant_id IS DISTINCT FROM
            nullif(current_setting('app.current_tenant_id', true), '')::uuid THEN
        RAISE EXCEPTION 'audit append for tenant % outside its tenant scope', p_tenant_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_metadata IS NULL OR jsonb_typeof(p_metadata) <> 'object' THEN
        RAISE EXCEPTION 'audit metadata must be a JSON object'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    bad_key := alquimista_platform.audit_bad_key_v1(p_metadata);
    IF bad_key ~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'audit metadata key % looks like personal data; record ids or hashes',
            bad_key USING ERRCODE = 'invalid_parameter_value';
    ELSIF bad_key IS NOT NULL THEN
        RAISE EXCEPTION 'audit metadata key % is not lower snake case ASCII', bad_key
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY SELECT * FROM alquimista_platform.audit_chain_write_v1(
        p_tenant_id, p_actor_id, p_actor_type, p_action, p_resource_type, p_resource_id,
        p_outcome, p_request_id, p_metadata,
        sha256(convert_to(alquimista_platform.audit_canonical_json_v1(p_metadata), 'UTF8')));
END
$$;

CREATE OR REPLACE FUNCTION alquimista_platform.audit_append_v2(
    p_tenant_id uuid,
    p_actor_id uuid,
    p_actor_type text,
    p_action text,
    p_resource_type text,
    p_resource_id text,
    p_outcome text,
    p_request_id text,
    p_metadata jsonb
) RETURNS TABLE (id uuid, seq bigint, row_hash bytea, occurred_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    scope text := nullif(current_setting('app.current_tenant_id', true), '');
    platform constant uuid := '00000000-0000-0000-0000-000000000000';
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
    payload := sha256(convert_to(alquimista_platform.audit_canonical_json_v2(p_metadata), 'UTF8'));
    IF scope IS NULL THEN
        PERFORM set_config('app.current_tenant_id', platform::text, true);
    END IF;
    RETURN QUERY SELECT * FROM alquimista_platform.audit_chain_write_v1(
        p_tenant_id, p_actor_id, p_actor_type, p_action, p_resource_type, p_resource_id,
        p_outcome, p_request_id, p_metadata, payload);
    IF scope IS NULL THEN
        PERFORM set_config('app.current_tenant_id', '', true);
    END IF;
END
$$;
