-- audit_append_v2: the platform chain without a scope switch, and one metadata walk.
--
-- 1. The platform's chain (the nil-UUID tenant of 029) is written by transactions scoped to
--    no tenant (public routes, webhooks that matched no subscription). v1 only writes the
--    chain of the transaction's tenant, so its caller switched the scope to the platform
--    tenant around the append. v2 accepts exactly two cases: the tenant of the transaction's
--    scope, or the platform tenant when the transaction is scoped to no tenant. A transaction
--    scoped to a tenant can therefore write neither another tenant's chain nor the
--    platform's, and an unscoped one only the platform's. The scope is switched inside this
--    function (its own RLS-forced tables need it) and restored before it returns.
-- 2. v1 walks the metadata twice (a jsonpath key check, then the canonical JSON) and each
--    walk level pays a function-level SET search_path. v2 checks the keys during the one
--    canonical walk, writes integers in place, and its helper carries no SET clause (it is
--    only called under the append's search_path, and names pg_catalog functions anyway).
--    Hashes and canonical JSON are byte for byte those of v1 (tests compare both with
--    rfc8785), so chains written by v1 and v2 verify alike.
--
-- v1 stays callable with its old behaviour for callers not yet moved.

-- RFC 8785 canonical JSON of metadata, within v1's domain; refuses a key that is not lower snake
-- case ASCII or that names personal data (the same rule as audit_bad_key_v1) and a number
-- that is not a safe integer.
CREATE FUNCTION alquimista_platform.audit_canonical_json_v2(value jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    kind text := pg_catalog.jsonb_typeof(value);
    bad_key text;
    bad_number boolean;
    result text;
BEGIN
    IF kind = 'object' THEN
        SELECT '{' || coalesce(pg_catalog.string_agg(
                   pg_catalog.to_json(e.key)::text || ':' || CASE pg_catalog.jsonb_typeof(e.value)
                       WHEN 'object' THEN alquimista_platform.audit_canonical_json_v2(e.value)
                       WHEN 'array' THEN alquimista_platform.audit_canonical_json_v2(e.value)
                       WHEN 'number' THEN pg_catalog.trunc(e.value::numeric)::text
                       ELSE e.value::text
                   END,
                   ',' ORDER BY e.key COLLATE "C"), '') || '}',
               pg_catalog.min(e.key) FILTER (
                   WHERE e.key !~ '^[a-z][a-z0-9_]{0,62}$'
                      OR e.key ~ ('(^|_)(email|e_mail|phone|telefone|celular|mobile|name|nome|'
                                  'first_name|last_name|full_name|cpf|cnpj|rg|passport|address|'
                                  'endereco|birth|birthday|nascimento|ip|user_agent|password|'
                                  'senha)(_|$)')),
               pg_catalog.bool_or(pg_catalog.jsonb_typeof(e.value) = 'number'
                   AND (e.value::numeric <> pg_catalog.trunc(e.value::numeric)
                        OR pg_catalog.abs(e.value::numeric) > 9007199254740991))
        INTO result, bad_key, bad_number FROM pg_catalog.jsonb_each(value) AS e;
    ELSIF kind = 'array' THEN
        SELECT '[' || coalesce(pg_catalog.string_agg(CASE pg_catalog.jsonb_typeof(e.value)
                       WHEN 'object' THEN alquimista_platform.audit_canonical_json_v2(e.value)
                       WHEN 'array' THEN alquimista_platform.audit_canonical_json_v2(e.value)
                       WHEN 'number' THEN pg_catalog.trunc(e.value::numeric)::text
                       ELSE e.value::text
                   END, ',' ORDER BY e.n), '') || ']',
               pg_catalog.bool_or(pg_catalog.jsonb_typeof(e.value) = 'number'
                   AND (e.value::numeric <> pg_catalog.trunc(e.value::numeric)
                        OR pg_catalog.abs(e.value::numeric) > 9007199254740991))
        INTO result, bad_number
        FROM pg_catalog.jsonb_array_elements(value) WITH ORDINALITY AS e (value, n);
    ELSIF kind = 'number' THEN
        RETURN alquimista_platform.audit_canonical_json_v1(value);
    ELSE
        RETURN value::text;  -- string, boolean or null
    END IF;
    IF bad_key ~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'audit metadata key % looks like personal data; record ids or hashes',
            bad_key USING ERRCODE = 'invalid_parameter_value';
    ELSIF bad_key IS NOT NULL THEN
        RAISE EXCEPTION 'audit metadata key % is not lower snake case ASCII', bad_key
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF bad_number THEN
        RAISE EXCEPTION 'audit metadata numbers must be integers within +-(2^53 - 1)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN result;
END
$$;

CREATE FUNCTION alquimista_platform.audit_append_v2(
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
#variable_conflict use_column
DECLARE
    scope text := nullif(current_setting('app.current_tenant_id', true), '');
    platform constant uuid := '00000000-0000-0000-0000-000000000000';
    head_seq bigint;
    head_hash bytea;
    new_id uuid := gen_random_uuid();
    new_seq bigint;
    new_hash bytea;
    payload bytea;
    at timestamptz;
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

    new_seq := head_seq + 1;
    -- Taken under the lock, so a tenant's occurred_at never goes back as seq goes up.
    at := clock_timestamp();
    new_hash := alquimista_platform.audit_row_hash_v1(head_hash,
        alquimista_platform.audit_record_json_v1(
            new_id, p_tenant_id, new_seq, at, p_actor_id, p_actor_type, p_action,
            p_resource_type, p_resource_id, p_outcome, p_request_id, payload));

    INSERT INTO alquimista_platform.audit_logs AS l (
        id, tenant_id, actor_user_id, actor_type, action, resource_type, resource_id, outcome,
        request_id, metadata, occurred_at, seq, prev_hash, payload_hash, row_hash, hash_version)
    VALUES (
        new_id, p_tenant_id, p_actor_id, p_actor_type, p_action, p_resource_type, p_resource_id,
        p_outcome, p_request_id, p_metadata, at, new_seq, head_hash, payload, new_hash, 1);
    UPDATE alquimista_platform.audit_heads AS h
    SET seq = new_seq, row_hash = new_hash
    WHERE h.tenant_id = p_tenant_id;

    IF scope IS NULL THEN
        PERFORM set_config('app.current_tenant_id', '', true);
    END IF;
    RETURN QUERY SELECT new_id, new_seq, new_hash, at;
END
$$;

-- Unauthenticated refusals (a webhook whose signature does not verify) name no tenant and cost
-- the sender nothing, so a flood of them would grow the platform chain without bound. This
-- records at most p_per_minute denied rows per (action, resource_type, resource_id) source in
-- a minute of the platform chain; the last one admitted carries "limit_reached": true, and
-- the rest return no row (the caller counts them in a metric). The count runs under the
-- platform head's lock, so concurrent refusals cannot overshoot, and reads only the minute's
-- platform rows (the tenant/time index). Only a transaction scoped to no tenant may call it.
CREATE FUNCTION alquimista_platform.audit_append_denied_v2(
    p_actor_id uuid,
    p_actor_type text,
    p_action text,
    p_resource_type text,
    p_resource_id text,
    p_request_id text,
    p_metadata jsonb,
    p_per_minute integer
) RETURNS TABLE (id uuid, seq bigint, row_hash bytea, occurred_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    platform constant uuid := '00000000-0000-0000-0000-000000000000';
    recent integer;
BEGIN
    IF nullif(current_setting('app.current_tenant_id', true), '') IS NOT NULL THEN
        RAISE EXCEPTION 'bounded denials go to the platform chain from an unscoped transaction'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_per_minute IS NULL OR p_per_minute < 1 THEN
        RAISE EXCEPTION 'p_per_minute must be at least 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('app.current_tenant_id', platform::text, true);
    PERFORM 1 FROM alquimista_platform.audit_heads AS h WHERE h.tenant_id = platform FOR UPDATE;
    SELECT count(*) INTO recent
    FROM alquimista_platform.audit_logs AS l
    WHERE l.tenant_id = platform
      AND l.occurred_at >= date_trunc('minute', now())
      AND l.action = p_action AND l.outcome = 'denied'
      AND l.resource_type = p_resource_type
      AND l.resource_id IS NOT DISTINCT FROM p_resource_id;
    IF recent < p_per_minute THEN
        RETURN QUERY SELECT * FROM alquimista_platform.audit_append_v2(
            platform, p_actor_id, p_actor_type, p_action, p_resource_type, p_resource_id,
            'denied', p_request_id,
            CASE WHEN recent + 1 = p_per_minute
                 THEN p_metadata || '{"limit_reached": true}'::jsonb ELSE p_metadata END);
    END IF;
    PERFORM set_config('app.current_tenant_id', '', true);
END
$$;
