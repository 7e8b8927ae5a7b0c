-- The transactional outbox: every domain event is a row written in the same transaction as the
-- change it announces (a rollback removes both), and a relay publishes committed rows to
-- EventBridge. docs/events.md describes the events and this table's life cycle.
--
-- Privileged path: writers and the relay go through the versioned SECURITY DEFINER functions
-- below, owned by the NOLOGIN role alquimista_outbox. Only that role has a policy that sees every
-- tenant's rows; the runtime role keeps forced tenant RLS and no BYPASSRLS, and can reach other
-- tenants' events only through what these functions return.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'alquimista_outbox') THEN
        CREATE ROLE alquimista_outbox NOLOGIN NOINHERIT;
    END IF;
    -- Giving a function to a role needs the right to SET ROLE to it; a superuser has it already,
    -- a CREATEROLE owner (Aurora's master user) holds ADMIN on the role it created.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT alquimista_outbox TO %I', current_user);
    END IF;
END
$$;

CREATE TABLE alquimista_platform.domain_outbox (
    -- The event id: consumers deduplicate by it.
    id              uuid PRIMARY KEY,
    -- Platform events (no tenant, e.g. a public commercial request) carry the nil UUID. No
    -- foreign key: an event outlives nothing it names, and the feed is rebuilt from these rows.
    tenant_id       uuid NOT NULL,
    aggregate_type  text NOT NULL CHECK (aggregate_type ~ '^[a-z][a-z0-9_]{0,62}$'),
    aggregate_id    text NOT NULL CHECK (length(aggregate_id) BETWEEN 1 AND 200),
    -- Gap-free per aggregate, assigned under a per-aggregate lock (see outbox_append_v1).
    seq             bigint NOT NULL CHECK (seq > 0),
    event_type      text NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    payload_version integer NOT NULL CHECK (payload_version > 0),
    payload         jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'inflight', 'published', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    available_at    timestamptz NOT NULL DEFAULT now(),
    claimed_until   timestamptz,
    last_error      text,
    published_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT domain_outbox_aggregate_seq_key
        UNIQUE (tenant_id, aggregate_type, aggregate_id, seq),
    CONSTRAINT domain_outbox_claim_check
        CHECK ((status = 'inflight') = (claimed_until IS NOT NULL))
);
SELECT public.attach_updated_at('alquimista_platform.domain_outbox');
SELECT public.enable_tenant_rls('alquimista_platform.domain_outbox');

-- What the relay claims next, and the inflight claims that may expire.
CREATE INDEX domain_outbox_pending_idx ON alquimista_platform.domain_outbox (available_at, created_at)
    WHERE status = 'pending';
CREATE INDEX domain_outbox_inflight_idx ON alquimista_platform.domain_outbox (claimed_until)
    WHERE status = 'inflight';
CREATE INDEX domain_outbox_dead_idx ON alquimista_platform.domain_outbox (created_at)
    WHERE status = 'dead';
-- Replay in emission order (one tenant's replay filters this scan). The unique key above is the
-- index led by tenant_id; another one would cost every claim and mark an index insert.
CREATE INDEX domain_outbox_published_idx ON alquimista_platform.domain_outbox (created_at, id)
    WHERE status = 'published';

GRANT USAGE ON SCHEMA alquimista_platform TO alquimista_outbox;
GRANT SELECT, INSERT, UPDATE ON alquimista_platform.domain_outbox TO alquimista_outbox;
CREATE POLICY outbox_functions ON alquimista_platform.domain_outbox
    TO alquimista_outbox USING (true) WITH CHECK (true);

-- Append one event in the caller's transaction and return its per-aggregate seq. The caller may
-- only emit for the tenant its transaction is scoped to (a tenantless transaction: the nil UUID).
-- The advisory lock serialises writers of one aggregate until they commit, so seq order is
-- commit order and has no gaps; the two-key form keeps clear of the single-key locks elsewhere.
CREATE FUNCTION alquimista_platform.outbox_append_v1(
    p_id uuid,
    p_tenant_id uuid,
    p_aggregate_type text,
    p_aggregate_id text,
    p_event_type text,
    p_payload_version integer,
    p_payload jsonb
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    scoped uuid := coalesce(
        nullif(current_setting('app.current_tenant_id', true), '')::uuid,
        '00000000-0000-0000-0000-000000000000'::uuid
    );
    next_seq bigint;
BEGIN
    IF p_tenant_id IS DISTINCT FROM scoped THEN
        RAISE EXCEPTION 'an event may only be emitted for the tenant of its transaction'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM pg_advisory_xact_lock(
        1869968482, hashtext(p_tenant_id::text || '/' || p_aggregate_type || '/' || p_aggregate_id)
    );
    SELECT coalesce(max(o.seq), 0) + 1 INTO next_seq
    FROM alquimista_platform.domain_outbox AS o
    WHERE o.tenant_id = p_tenant_id
      AND o.aggregate_type = p_aggregate_type
      AND o.aggregate_id = p_aggregate_id;
    INSERT INTO alquimista_platform.domain_outbox (
        id, tenant_id, aggregate_type, aggregate_id, seq, event_type, payload_version, payload,
        created_at, available_at
    ) VALUES (
        p_id, p_tenant_id, p_aggregate_type, p_aggregate_id, next_seq, p_event_type,
        p_payload_version, p_payload, clock_timestamp(), clock_timestamp()
    );
    RETURN next_seq;
END
$$;

-- Claim up to p_limit due events for p_claim_s seconds. An event whose aggregate still has an
-- earlier event pending or inflight is not claimable: an aggregate publishes in seq order even
-- while an earlier event backs off after a failure (a dead event no longer holds the rest).
CREATE FUNCTION alquimista_platform.outbox_claim_v1(p_limit integer, p_claim_s integer)
RETURNS TABLE (
    id uuid, tenant_id uuid, aggregate_type text, aggregate_id text, seq bigint,
    event_type text, payload_version integer, payload jsonb, attempts integer,
    created_at timestamptz
)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH claimable AS (
        SELECT o.id
        FROM alquimista_platform.domain_outbox AS o
        WHERE o.status = 'pending'
          AND o.available_at <= now()
          AND NOT EXISTS (
                SELECT 1 FROM alquimista_platform.domain_outbox AS p
                WHERE p.tenant_id = o.tenant_id
                  AND p.aggregate_type = o.aggregate_type
                  AND p.aggregate_id = o.aggregate_id
                  AND p.seq < o.seq
                  AND p.status IN ('pending', 'inflight'))
        ORDER BY o.available_at, o.created_at
        LIMIT p_limit
        FOR UPDATE OF o SKIP LOCKED
    )
    -- = ANY(ARRAY(...)) keeps the update on the primary key whatever the table's size (a join
    -- may be planned as a hash join over every row, published ones included).
    UPDATE alquimista_platform.domain_outbox AS o
    SET status = 'inflight',
        attempts = o.attempts + 1,
        claimed_until = now() + make_interval(secs => p_claim_s)
    WHERE o.id = ANY (ARRAY(SELECT claimable.id FROM claimable))
    RETURNING o.id, o.tenant_id, o.aggregate_type, o.aggregate_id, o.seq, o.event_type,
              o.payload_version, o.payload, o.attempts, o.created_at;
$$;

-- Published: also from 'pending' (a claim that expired and was reset before this mark landed).
CREATE FUNCTION alquimista_platform.outbox_mark_published_v1(p_ids uuid[])
RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH marked AS (
        UPDATE alquimista_platform.domain_outbox
        SET status = 'published', published_at = now(), claimed_until = NULL, last_error = NULL
        WHERE id = ANY (p_ids) AND status IN ('pending', 'inflight')
        RETURNING 1
    )
    SELECT count(*)::integer FROM marked;
$$;

-- Failed publishes: the relay decides (lambdas/outbox/decisions.py) whether each one retries
-- after a delay or is dead; this only applies the decision to events still inflight.
CREATE FUNCTION alquimista_platform.outbox_mark_failed_v1(
    p_ids uuid[], p_errors text[], p_retry_after_s double precision[], p_dead boolean[]
) RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH failure AS (
        SELECT * FROM unnest(p_ids, p_errors, p_retry_after_s, p_dead)
            AS f(id, error, retry_after_s, dead)
    ), marked AS (
        UPDATE alquimista_platform.domain_outbox AS o
        SET status = CASE WHEN f.dead THEN 'dead' ELSE 'pending' END,
            available_at = now() + make_interval(secs => f.retry_after_s),
            claimed_until = NULL,
            last_error = left(f.error, 1000)
        FROM failure AS f
        WHERE o.id = f.id AND o.status = 'inflight'
        RETURNING 1
    )
    SELECT count(*)::integer FROM marked;
$$;

-- Claims whose relay died (or overran) go back to pending, or to dead once they have used up
-- p_max_attempts: an event that crashes the relay every time must not hold its aggregate forever.
CREATE FUNCTION alquimista_platform.outbox_reset_expired_v1(p_max_attempts integer)
RETURNS TABLE (reset integer, dead integer)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH expired AS (
        UPDATE alquimista_platform.domain_outbox
        SET status = CASE WHEN attempts >= p_max_attempts THEN 'dead' ELSE 'pending' END,
            claimed_until = NULL,
            available_at = now(),
            last_error = 'claim expired before the relay marked the event'
        WHERE status = 'inflight' AND claimed_until < now()
        RETURNING status
    )
    SELECT count(*) FILTER (WHERE status = 'pending')::integer,
           count(*) FILTER (WHERE status = 'dead')::integer
    FROM expired;
$$;

-- The backlog as the alarms see it; every count reads a partial index.
CREATE FUNCTION alquimista_platform.outbox_stats_v1()
RETURNS TABLE (pending bigint, inflight bigint, dead bigint, oldest_pending_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT (SELECT count(*) FROM alquimista_platform.domain_outbox WHERE status = 'pending'),
           (SELECT count(*) FROM alquimista_platform.domain_outbox WHERE status = 'inflight'),
           (SELECT count(*) FROM alquimista_platform.domain_outbox WHERE status = 'dead'),
           (SELECT min(created_at) FROM alquimista_platform.domain_outbox
            WHERE status = 'pending');
$$;

-- Published events in emission order after a (created_at, id) position, for rebuilding a
-- projection (all tenants, or one when p_tenant_id is given).
CREATE FUNCTION alquimista_platform.outbox_published_v1(
    p_tenant_id uuid, p_after_created timestamptz, p_after_id uuid, p_limit integer
) RETURNS TABLE (
    id uuid, tenant_id uuid, aggregate_type text, aggregate_id text, seq bigint,
    event_type text, payload_version integer, payload jsonb, attempts integer,
    created_at timestamptz
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT o.id, o.tenant_id, o.aggregate_type, o.aggregate_id, o.seq, o.event_type,
           o.payload_version, o.payload, o.attempts, o.created_at
    FROM alquimista_platform.domain_outbox AS o
    WHERE o.status = 'published'
      AND (p_tenant_id IS NULL OR o.tenant_id = p_tenant_id)
      AND (p_after_created IS NULL OR (o.created_at, o.id) > (p_after_created, p_after_id))
    ORDER BY o.created_at, o.id
    LIMIT p_limit;
$$;

ALTER FUNCTION alquimista_platform.outbox_append_v1(uuid, uuid, text, text, text, integer, jsonb)
    OWNER TO alquimista_outbox;
ALTER FUNCTION alquimista_platform.outbox_claim_v1(integer, integer) OWNER TO alquimista_outbox;
ALTER FUNCTION alquimista_platform.outbox_mark_published_v1(uuid[]) OWNER TO alquimista_outbox;
ALTER FUNCTION alquimista_platform.outbox_mark_failed_v1(uuid[], text[], double precision[], boolean[])
    OWNER TO alquimista_outbox;
ALTER FUNCTION alquimista_platform.outbox_reset_expired_v1(integer) OWNER TO alquimista_outbox;
ALTER FUNCTION alquimista_platform.outbox_stats_v1() OWNER TO alquimista_outbox;
ALTER FUNCTION alquimista_platform.outbox_published_v1(uuid, timestamptz, uuid, integer)
    OWNER TO alquimista_outbox;

-- The activity feed (a DynamoDB projection of these events) is read by members and admins.
INSERT INTO alquimista_platform.permissions (code, description) VALUES
    ('activity:read', 'Read the tenant''s activity feed');
INSERT INTO alquimista_platform.role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM alquimista_platform.roles AS r
CROSS JOIN alquimista_platform.permissions AS p
WHERE r.name IN ('admin', 'member') AND p.code = 'activity:read';
