-- What an audit append costs inside PostgreSQL, cut where a profile of audit_append_v2 put it
-- (docs/benchmarks.md, "Audit chain"). Hashes, canonical JSON and error messages are those of
-- 024/034 byte for byte (the golden vectors in tests/integration/test_audit_chain.py and
-- test_audit_append_v2.py check them), so chains written before and after verify alike.
--
-- 1. The metadata's canonical JSON took about a third of an append: v2 ran two regular
--    expressions per key, one of them a bounded repetition ({0,62}) that PostgreSQL's regex
--    engine rebuilds its automaton for on every match. audit_canonical_json_v3 applies the same
--    rules with an unbounded class plus a length test, and the personal-data tokens as an
--    array overlap on the key's underscore-separated tokens (plus the two tokens that hold an
--    underscore). It is plain SQL and returns NULL for anything outside the rules; the append
--    then calls v2, whose walk raises the precise error. Arrays are left to v2.
-- 2. audit_json_string_v1 and audit_row_hash_v1 were declared IMMUTABLE over STABLE bodies
--    (to_json, convert_to). PostgreSQL inlines an SQL function only when its body is no more
--    volatile than it is declared, so each append called them through the function manager,
--    eleven times. Declared STABLE (what they are), they are inlined into the append.
-- 3. The audit row's foreign key to tenants ran a lookup (and a row lock on the tenant) per
--    append. It is implied: every row is written by audit_chain_write_v1 in the statement that
--    advances its tenant's audit_heads row, which that tenant's foreign key (ON DELETE
--    RESTRICT) holds, and the runtime role can delete neither.
-- 4. audit_append_v1 and v2 each checked the tenant scope and the metadata (near copies). The
--    metadata checks now live in v2 only; v1 keeps its stricter scope rule (its own tenant,
--    never the platform's) and calls v2.

ALTER FUNCTION alquimista_platform.audit_json_string_v1(text) STABLE;
ALTER FUNCTION alquimista_platform.audit_row_hash_v1(bytea, text) STABLE;

ALTER TABLE alquimista_platform.audit_logs DROP CONSTRAINT audit_logs_tenant_id_fkey;

-- RFC 8785 canonical JSON of a metadata object within v2's rules, or NULL when any key or
-- number breaks them (or the value is not an object). Arrays are written by v2, which raises
-- on what it refuses inside them. ($1, not its name: the rows of jsonb_each
-- have a column "value", which a bare name would mean.)
CREATE FUNCTION alquimista_platform.audit_canonical_json_v3(value jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof($1) = 'object' AND pg_catalog.bool_and(
                    e.key ~ '^[a-z][a-z0-9_]*$' AND pg_catalog.length(e.key) <= 63
                    AND NOT pg_catalog.string_to_array(e.key, '_') OPERATOR(pg_catalog.&&)
                        '{email,phone,telefone,celular,mobile,name,nome,cpf,cnpj,rg,passport,address,endereco,birth,birthday,nascimento,ip,password,senha}'::text[]
                    AND pg_catalog.strpos('_' || e.key || '_', '_e_mail_') = 0
                    AND pg_catalog.strpos('_' || e.key || '_', '_user_agent_') = 0
                    AND (pg_catalog.jsonb_typeof(e.value) <> 'number'
                         OR (e.value::numeric = pg_catalog.trunc(e.value::numeric)
                             AND pg_catalog.abs(e.value::numeric) <= 9007199254740991))
                    AND (pg_catalog.jsonb_typeof(e.value) <> 'object'
                         OR alquimista_platform.audit_canonical_json_v3(e.value) IS NOT NULL))
                IS NOT FALSE
        THEN '{' || coalesce(pg_catalog.string_agg(
                 '"' || e.key || '":' || CASE pg_catalog.jsonb_typeof(e.value)
                     WHEN 'number' THEN pg_catalog.trunc(e.value::numeric)::text
                     WHEN 'object' THEN alquimista_platform.audit_canonical_json_v3(e.value)
                     WHEN 'array' THEN alquimista_platform.audit_canonical_json_v2(e.value)
                     ELSE e.value::text
                 END,
                 ',' ORDER BY e.key COLLATE "C"), '') || '}'
    END
    FROM pg_catalog.jsonb_each(CASE WHEN pg_catalog.jsonb_typeof($1) = 'object'
                                    THEN $1 ELSE '{}' END) AS e
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
    -- v2's walk only when v3 refuses: it names the key or number at fault
    payload := sha256(convert_to(coalesce(
        alquimista_platform.audit_canonical_json_v3(p_metadata),
        alquimista_platform.audit_canonical_json_v2(p_metadata)), 'UTF8'));
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
BEGIN
    -- v1 writes only the chain of the transaction's own tenant (v2 also the platform's from an
    -- unscoped transaction); v2 checks the metadata.
    IF p_tenant_id IS DISTINCT FROM
            nullif(current_setting('app.current_tenant_id', true), '')::uuid THEN
        RAISE EXCEPTION 'audit append for tenant % outside its tenant scope', p_tenant_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY SELECT * FROM alquimista_platform.audit_append_v2(
        p_tenant_id, p_actor_id, p_actor_type, p_action, p_resource_type, p_resource_id,
        p_outcome, p_request_id, p_metadata);
END
$$;
