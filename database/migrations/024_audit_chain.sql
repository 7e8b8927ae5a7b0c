-- The audit log becomes a per-tenant hash chain (docs/audit.md).
--
-- Each tenant's rows carry a gap-free seq (1, 2, 3, ...) assigned under that tenant's head
-- row lock, so appends of one tenant are serialised and appends of different tenants never
-- wait on each other (a global sequence would hand out numbers in an order other than commit
-- order). Each row stores
--   payload_hash = SHA-256(canonical JSON of metadata)
--   row_hash     = SHA-256('alquimista-audit/v1' || 0x0A || prev_hash || canonical JSON of the
--                          row's hashed fields)
-- where canonical JSON is RFC 8785 (JCS). The SQL below builds it for a deliberately small
-- domain (object keys in lower snake case ASCII, strings, safe integers, booleans, null,
-- arrays, objects) where JCS reduces to: keys sorted by code unit, no whitespace, strings
-- escaped as JSON.stringify does. tests/integration/test_audit_chain.py holds golden vectors
-- that compare it byte for byte with the rfc8785 library.
--
-- Rows are appended only through alquimista_platform.audit_append_v1, in the caller's
-- transaction. The runtime role keeps SELECT but loses INSERT/UPDATE/DELETE/TRUNCATE (the
-- migration runner revokes them after each grant sync), and triggers refuse UPDATE, DELETE
-- and TRUNCATE even for the owner; only disabling the triggers (an act a superuser can do)
-- gets past them, and the external anchor (S3 Object Lock) catches what that hides.
--
-- Payloads carry ids and hashes only: LGPD erasure deletes personal data where it lives
-- (users, leads), and the chain, holding none, stays intact. The append function refuses
-- metadata keys that name personal data (email, phone, name, cpf, ...).

-- The actor is kept as an opaque id: a foreign key with ON DELETE SET NULL would rewrite
-- (and break) the chain when a user is erased, and RESTRICT would forbid the erasure.
ALTER TABLE alquimista_platform.audit_logs
    DROP CONSTRAINT IF EXISTS audit_logs_actor_user_id_fkey;

ALTER TABLE alquimista_platform.audit_logs
    ADD COLUMN seq bigint,
    ADD COLUMN prev_hash bytea,
    ADD COLUMN payload_hash bytea,
    ADD COLUMN row_hash bytea,
    ADD COLUMN hash_version smallint NOT NULL DEFAULT 1 CHECK (hash_version = 1);

-- One row per tenant: the last seq and row_hash. Locking it serialises that tenant's appends.
CREATE TABLE alquimista_platform.audit_heads (
    tenant_id   uuid PRIMARY KEY REFERENCES alquimista_platform.tenants (id) ON DELETE RESTRICT,
    seq         bigint NOT NULL CHECK (seq >= 0),
    row_hash    bytea NOT NULL CHECK (octet_length(row_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
SELECT public.attach_updated_at('alquimista_platform.audit_heads');
SELECT public.enable_tenant_rls('alquimista_platform.audit_heads');

-- The small SQL helpers below carry no SET search_path (it would stop PostgreSQL from inlining
-- them, and the append would pay a function call and a plan per helper per transaction); their
-- bodies name pg_catalog functions explicitly, and pg_catalog is searched first anyway.

-- A JSON string exactly as JSON.stringify (and so RFC 8785) writes it: PostgreSQL escapes
-- '"', '\', \b \f \n \r \t and other control characters as \u00xx (lower-case hex), and
-- nothing else.
CREATE FUNCTION alquimista_platform.audit_json_string_v1(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pg_catalog.to_json(value)::text $$;

-- RFC 8785 canonical JSON of metadata, within the domain described at the top. Strings,
-- booleans and null are written in place (jsonb prints a string through the same escaping as
-- to_json); only nested values and numbers recurse.
CREATE FUNCTION alquimista_platform.audit_canonical_json_v1(value jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind text := jsonb_typeof(value);
    number numeric;
    bad_keys boolean;
    result text;
BEGIN
    IF kind = 'object' THEN
        SELECT '{' || coalesce(string_agg(
                   to_json(e.key)::text || ':' || CASE jsonb_typeof(e.value)
                       WHEN 'object' THEN alquimista_platform.audit_canonical_json_v1(e.value)
                       WHEN 'array' THEN alquimista_platform.audit_canonical_json_v1(e.value)
                       WHEN 'number' THEN alquimista_platform.audit_canonical_json_v1(e.value)
                       ELSE e.value::text
                   END,
                   ',' ORDER BY e.key COLLATE "C"), '') || '}',
               bool_or(e.key !~ '^[a-z][a-z0-9_]{0,62}$')
        INTO result, bad_keys FROM jsonb_each(value) AS e;
        IF bad_keys THEN
            RAISE EXCEPTION 'audit metadata keys must be lower snake case ASCII'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN result;
    ELSIF kind = 'array' THEN
        SELECT '[' || coalesce(string_agg(
                   alquimista_platform.audit_canonical_json_v1(e.value), ',' ORDER BY e.n), '')
               || ']'
        INTO result FROM jsonb_array_elements(value) WITH ORDINALITY AS e (value, n);
        RETURN result;
    ELSIF kind = 'number' THEN
        number := value::numeric;
        IF number <> trunc(number) OR abs(number) > 9007199254740991 THEN
            RAISE EXCEPTION 'audit metadata numbers must be integers within +-(2^53 - 1)'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RETURN trunc(number)::text;
    END IF;
    RETURN value::text;  -- string, boolean or null
END
$$;

CREATE FUNCTION alquimista_platform.audit_timestamp_v1(value timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE
AS $$ SELECT pg_catalog.to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

-- The canonical JSON of a row's hashed fields (keys in code-unit order).
CREATE FUNCTION alquimista_platform.audit_record_json_v1(
    id uuid,
    tenant_id uuid,
    seq bigint,
    occurred_at timestamptz,
    actor_id uuid,
    actor_type text,
    action text,
    resource_type text,
    resource_id text,
    outcome text,
    request_id text,
    payload_hash bytea
) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT '{"action":' || alquimista_platform.audit_json_string_v1(action)
        || ',"actor_id":' || coalesce(alquimista_platform.audit_json_string_v1(actor_id::text), 'null')
        || ',"actor_type":' || alquimista_platform.audit_json_string_v1(actor_type)
        || ',"id":' || alquimista_platform.audit_json_string_v1(id::text)
        || ',"occurred_at":'
        || alquimista_platform.audit_json_string_v1(alquimista_platform.audit_timestamp_v1(occurred_at))
        || ',"outcome":' || alquimista_platform.audit_json_string_v1(outcome)
        || ',"payload_hash":' || alquimista_platform.audit_json_string_v1(pg_catalog.encode(payload_hash, 'hex'))
        || ',"request_id":' || coalesce(alquimista_platform.audit_json_string_v1(request_id), 'null')
        || ',"resource_id":' || coalesce(alquimista_platform.audit_json_string_v1(resource_id), 'null')
        || ',"resource_type":' || alquimista_platform.audit_json_string_v1(resource_type)
        || ',"seq":' || seq::text
        || ',"tenant_id":' || alquimista_platform.audit_json_string_v1(tenant_id::text)
        || '}'
$$;

CREATE FUNCTION alquimista_platform.audit_row_hash_v1(prev_hash bytea, record_json text)
RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pg_catalog.sha256('alquimista-audit/v1'::bytea || '\x0a'::bytea || prev_hash
                               || pg_catalog.convert_to(record_json, 'UTF8')) $$;

-- Chain the rows written before this migration, per tenant, in the order they were written.
-- RLS is forced on the owner too, so each tenant is scoped in turn.
DO $$
DECLARE
    tenant record;
    entry record;
    previous bytea;
    position bigint;
    payload bytea;
BEGIN
    FOR tenant IN SELECT id FROM alquimista_platform.tenants ORDER BY id LOOP
        PERFORM set_config('app.current_tenant_id', tenant.id::text, true);
        previous := '\x0000000000000000000000000000000000000000000000000000000000000000';
        position := 0;
        FOR entry IN
            SELECT * FROM alquimista_platform.audit_logs
            WHERE tenant_id = tenant.id
            ORDER BY occurred_at, created_at, id
        LOOP
            position := position + 1;
            payload := sha256(convert_to(
                alquimista_platform.audit_canonical_json_v1(entry.metadata), 'UTF8'));
            UPDATE alquimista_platform.audit_logs SET
                seq = position,
                prev_hash = previous,
                payload_hash = payload,
                row_hash = alquimista_platform.audit_row_hash_v1(previous,
                    alquimista_platform.audit_record_json_v1(
                        entry.id, entry.tenant_id, position, entry.occurred_at,
                        entry.actor_user_id, entry.actor_type, entry.action, entry.resource_type,
                        entry.resource_id, entry.outcome, entry.request_id, payload))
            WHERE id = entry.id
            RETURNING row_hash INTO previous;
        END LOOP;
        IF position > 0 THEN
            INSERT INTO alquimista_platform.audit_heads (tenant_id, seq, row_hash)
            VALUES (tenant.id, position, previous);
        END IF;
    END LOOP;
    PERFORM set_config('app.current_tenant_id', '', true);
END
$$;

ALTER TABLE alquimista_platform.audit_logs
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN payload_hash SET NOT NULL,
    ALTER COLUMN row_hash SET NOT NULL,
    ADD CONSTRAINT audit_logs_seq_positive CHECK (seq >= 1),
    ADD CONSTRAINT audit_logs_hash_lengths CHECK (
        octet_length(prev_hash) = 32 AND octet_length(payload_hash) = 32
        AND octet_length(row_hash) = 32),
    ADD CONSTRAINT audit_logs_tenant_seq_key UNIQUE (tenant_id, seq);

-- The per-tenant seq index serves verification and cursor pagination; filters by actor and
-- action get their own tenant-led indexes.
CREATE INDEX audit_logs_tenant_actor_idx
    ON alquimista_platform.audit_logs (tenant_id, actor_user_id, seq);
CREATE INDEX audit_logs_tenant_action_idx
    ON alquimista_platform.audit_logs (tenant_id, action, seq);

-- The first metadata key, at any depth, that is not lower snake case ASCII or that names
-- personal data; tokens are matched between underscores, so "email" and "owner_email" are
-- refused and "agent_id" is not. One jsonpath walk, no recursion in SQL.
CREATE FUNCTION alquimista_platform.audit_bad_key_v1(value jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
        SELECT k #>> '{}'
        FROM jsonb_path_query(value, 'strict $.** ? (@.type() == "object").keyvalue().key') AS k
        WHERE (k #>> '{}') !~ '^[a-z][a-z0-9_]{0,62}$'
           OR (k #>> '{}') ~ ('(^|_)(email|e_mail|phone|telefone|celular|mobile|name|nome|'
                              'first_name|last_name|full_name|cpf|cnpj|rg|passport|address|'
                              'endereco|birth|birthday|nascimento|ip|user_agent|password|'
                              'senha)(_|$)')
        LIMIT 1);
END
$$;

-- The one way to write an audit row. Runs in the caller's transaction, scoped by its
-- app.current_tenant_id (RLS on both tables refuses any other tenant).
CREATE FUNCTION alquimista_platform.audit_append_v1(
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
    head_seq bigint;
    head_hash bytea;
    new_id uuid := gen_random_uuid();
    new_seq bigint;
    new_hash bytea;
    payload bytea;
    bad_key text;
    at timestamptz;
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
    payload := sha256(convert_to(alquimista_platform.audit_canonical_json_v1(p_metadata), 'UTF8'));

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

    RETURN QUERY SELECT new_id, new_seq, new_hash, at;
END
$$;

-- Every tenant's head, for the anchoring job (which runs with no tenant scope). Reads one
-- tenant at a time under that tenant's own scope, then restores the caller's.
CREATE FUNCTION alquimista_platform.audit_heads_v1()
RETURNS TABLE (tenant_id uuid, seq bigint, row_hash bytea, updated_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    caller text := current_setting('app.current_tenant_id', true);
    tenant uuid;
BEGIN
    FOR tenant IN SELECT t.id FROM alquimista_platform.tenants AS t ORDER BY t.id LOOP
        PERFORM set_config('app.current_tenant_id', tenant::text, true);
        RETURN QUERY
            SELECT h.tenant_id, h.seq, h.row_hash, h.updated_at
            FROM alquimista_platform.audit_heads AS h
            WHERE h.tenant_id = tenant AND h.seq > 0;
    END LOOP;
    PERFORM set_config('app.current_tenant_id', coalesce(caller, ''), true);
END
$$;

CREATE FUNCTION alquimista_platform.audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'alquimista_platform.audit_logs is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- "append_only" sorts before "set_updated_at", so it fires first and the updated_at trigger
-- (kept for the catalog convention) never runs: updated_at stays equal to created_at.
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON alquimista_platform.audit_logs
    FOR EACH ROW EXECUTE FUNCTION alquimista_platform.audit_refuse_change();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON alquimista_platform.audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION alquimista_platform.audit_refuse_change();

-- Defence in depth beside the runner's grant sync (which revokes the same after each run).
DO $$
DECLARE
    grantee text;
BEGIN
    FOR grantee IN
        SELECT DISTINCT g.grantee FROM information_schema.role_table_grants AS g
        WHERE g.table_schema = 'alquimista_platform'
          AND g.table_name IN ('audit_logs', 'audit_heads')
          AND g.grantee NOT IN (current_user, 'PUBLIC')
    LOOP
        EXECUTE format(
            'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alquimista_platform.audit_logs, '
            'alquimista_platform.audit_heads FROM %I', grantee);
    END LOOP;
END
$$;

-- 002 seeds audit:read and gives admin every permission; a database adopted from the legacy
-- process may lack either, so both are stated again (idempotently).
INSERT INTO alquimista_platform.permissions (code, description)
VALUES ('audit:read', 'Read the audit log')
ON CONFLICT (code) DO NOTHING;
INSERT INTO alquimista_platform.role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM alquimista_platform.roles AS r, alquimista_platform.permissions AS p
WHERE r.name = 'admin' AND p.code = 'audit:read'
ON CONFLICT (role_id, permission_id) DO NOTHING;
