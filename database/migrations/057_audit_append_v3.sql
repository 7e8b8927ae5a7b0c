-- audit_append_v3: audit_append_v2's rules, checks, hashes and error messages in one plpgsql
-- body whose statements keep their plans for the session (docs/benchmarks.md, "Audit chain").
-- Hashes are those of 024/034/041 byte for byte (the golden vectors in
-- tests/integration/test_audit_chain.py and test_audit_append_v3.py check them), so chains
-- written by v1, v2 and v3 verify alike.
--
-- 1. The metadata's canonical JSON: a flat object (string, boolean, null or integer values;
--    what a route records) is written by one statement of this function, whose plan
--    PL/pgSQL keeps for the session. audit_canonical_json_v3 is an SQL function that cannot be
--    inlined (an aggregate over jsonb_each), so a caller in a new transaction re-initialises
--    it: on PostgreSQL 17 (Aurora) that is a parse and plan of its body per append. The rules
--    are v3's (the same key pattern, length, personal-data tokens and safe integers) and the
--    text is v3's expression; anything else (nested values, a refused key or number) goes to
--    v3 and then v2 as before, and v2's walk raises the precise error.
-- 2. The chain write is inlined (no nested audit_chain_write_v1 call and no RETURN QUERY over
--    it), and the function returns one row through OUT parameters instead of a set.
-- 3. The row's canonical JSON writes the values that need no escaping (uuids, the timestamp's
--    fixed format, the payload hash's hex, the seq) without a to_json call each; the strings
--    still go through to_json, as audit_record_json_v1 writes them.
--
-- v2 stays (decide_approval_v3 and audit_append_denied_v2 call it); both write the same chain
-- under the same head lock.
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
#variable_conflict use_column
DECLARE
    scope text := nullif(current_setting('app.current_tenant_id', true), '');
    platform constant uuid := '00000000-0000-0000-0000-000000000000';
    flat boolean;
    canonical text;
    payload bytea;
    head_seq bigint;
    head_hash bytea;
BEGIN
    -- Explicit, not left to RLS: the owner may be a role that bypasses it (see 034).
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
    SELECT bool_and(
               e.key ~ '^[a-z][a-z0-9_]*$' AND length(e.key) <= 63
               AND NOT string_to_array(e.key, '_') OPERATOR(pg_catalog.&&)
                   '{email,phone,telefone,celular,mobile,name,nome,cpf,cnpj,rg,passport,address,endereco,birth,birthday,nascimento,ip,password,senha}'::text[]
               AND strpos('_' || e.key || '_', '_e_mail_') = 0
               AND strpos('_' || e.key || '_', '_user_agent_') = 0
               AND CASE jsonb_typeof(e.value)
                       WHEN 'number' THEN e.value::numeric = trunc(e.value::numeric)
                                          AND abs(e.value::numeric) <= 9007199254740991
                       ELSE jsonb_typeof(e.value) IN ('string', 'boolean', 'null')
                   END),
           '{' || coalesce(string_agg(
               '"' || e.key || '":' || CASE jsonb_typeof(e.value)
                   WHEN 'number' THEN trunc(e.value::numeric)::text
                   ELSE e.value::text
               END,
               ',' ORDER BY e.key COLLATE "C"), '') || '}'
    INTO flat, canonical
    FROM jsonb_each(p_metadata) AS e;
    IF flat IS FALSE THEN
        -- v2's walk only when v3 refuses: it names the key or number at fault
        canonical := coalesce(alquimista_platform.audit_canonical_json_v3(p_metadata),
                              alquimista_platform.audit_canonical_json_v2(p_metadata));
    END IF;
    payload := sha256(convert_to(canonical, 'UTF8'));

    IF scope IS NULL THEN
        PERFORM set_config('app.current_tenant_id', platform::text, true);
    END IF;
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

    id := gen_random_uuid();
    seq := head_seq + 1;
    -- Taken under the lock, so a tenant's occurred_at never goes back as seq goes up.
    occurred_at := clock_timestamp();
    -- audit_record_json_v1's text: keys in code-unit order, strings through to_json
    row_hash := sha256('alquimista-audit/v1'::bytea || '\x0a'::bytea || head_hash
        || convert_to(
            '{"action":' || to_json(p_action)::text
            || ',"actor_id":' || coalesce('"' || p_actor_id::text || '"', 'null')
            || ',"actor_type":' || to_json(p_actor_type)::text
            || ',"id":"' || id::text
            || '","occurred_at":"'
            || to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
            || '","outcome":' || to_json(p_outcome)::text
            || ',"payload_hash":"' || encode(payload, 'hex')
            || '","request_id":' || coalesce(to_json(p_request_id)::text, 'null')
            || ',"resource_id":' || coalesce(to_json(p_resource_id)::text, 'null')
            || ',"resource_type":' || to_json(p_resource_type)::text
            || ',"seq":' || seq::text
            || ',"tenant_id":"' || p_tenant_id::text || '"}',
            'UTF8'));

    WITH appended AS (
        INSERT INTO alquimista_platform.audit_logs AS l (
            id, tenant_id, actor_user_id, actor_type, action, resource_type, resource_id,
            outcome, request_id, metadata, occurred_at, seq, prev_hash, payload_hash, row_hash,
            hash_version)
        VALUES (
            id, p_tenant_id, p_actor_id, p_actor_type, p_action, p_resource_type,
            p_resource_id, p_outcome, p_request_id, p_metadata, occurred_at, seq, head_hash,
            payload, row_hash, 1)
        RETURNING l.tenant_id, l.seq, l.row_hash
    )
    UPDATE alquimista_platform.audit_heads AS h
    SET seq = a.seq, row_hash = a.row_hash
    FROM appended AS a
    WHERE h.tenant_id = a.tenant_id;
    IF scope IS NULL THEN
        PERFORM set_config('app.current_tenant_id', '', true);
    END IF;
END
$$;
