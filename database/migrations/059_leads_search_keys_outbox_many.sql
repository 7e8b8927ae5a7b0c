-- Two costs of docs/benchmarks.md's "## Leads", measured at 100,000 leads in one tenant:
--
-- 1. The leads list's rare-term text search. 054's trigram indexes were led by the tenant
--    (btree_gin): every lookup decoded the whole posting list of the tenant's key (100,000 row
--    pointers in the big tenant, ~200 index pages) to intersect it with the term's trigrams:
--    2.0 of the 2.3 ms of `acme 12`. A trigram index without the tenant reads other tenants'
--    matches instead (a small tenant's middling term: 5,133 candidates for its 270). Here each
--    trigram key carries its tenant: the key is the tenant id's first 8 hex digits followed by
--    the trigram, so a lookup reads the scoped tenant's posting lists only (`acme 12`: 0.34 ms,
--    279 candidates; a small tenant's: 0.05 ms, 28). Another tenant whose id starts alike only
--    adds candidates, which the tenant predicate drops; the exact LIKE decides every row.
--
--    A text's keys are the three-character substrings of the text with its spaces removed (as
--    054's joined index: `acme 12` is looked up as "acme12", whose cross-word trigrams are the
--    rare ones); a LIKE pattern's keys are those of each literal run between its wildcards
--    (`%`, `_`; `\` escapes). A run of a pattern a row matches is a substring of the row's text,
--    so the run's substrings are among the text's: the index never loses a match. The keys are
--    plain substrings, not pg_trgm's: show_trgm splits words by the database's LC_CTYPE and,
--    under a UTF-8 one, writes a trigram with a multibyte letter as a hash that hides its word
--    padding, so `%joão%`'s keys held a boundary trigram "maria joão silva" does not. A pattern
--    with no literal run of three characters (spaces aside) has no keys; the newest rows are
--    then walked with the exact predicate alone.
--
-- 2. The outbox appends of a sync push: outbox_append_v1 once per event (1,000 statements,
--    pipelined). outbox_append_many_v1 appends a batch in one statement with the same rules.

-- A loop, not ARRAY(SELECT ... generate_series): 13 against 38-55 us a row (show_trgm: 17),
-- paid by every insert and update of a lead. A key may come twice; GIN stores it once.
CREATE FUNCTION nigredo_leads.search_keys_v1(p_tenant_id uuid, p_text text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    joined text := replace(p_text, ' ', '');
    tenant text := left(p_tenant_id::text, 8);
    keys text[] := '{}';
BEGIN
    FOR i IN 1 .. coalesce(length(joined), 0) - 2 LOOP
        keys := keys || (tenant || substr(joined, i, 3));
    END LOOP;
    RETURN keys;
END
$$;

-- The keys of a LIKE pattern (escape `\`): those of each literal run between its wildcards,
-- unescaped. Every text the pattern matches holds them all.
CREATE FUNCTION nigredo_leads.search_pattern_keys_v1(p_tenant_id uuid, p_pattern text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    run text;
    keys text[] := '{}';
BEGIN
    FOR run IN
        SELECT regexp_replace(literal[1], '\\(.)', '\1', 'g')
        FROM regexp_matches(p_pattern, '(?:\\.|[^\\%_])+', 'g') AS runs (literal)
    LOOP
        keys := keys || nigredo_leads.search_keys_v1(p_tenant_id, run);
    END LOOP;
    RETURN ARRAY(SELECT DISTINCT key FROM unnest(keys) AS key);
END
$$;

CREATE INDEX leads_live_search_keys_idx ON nigredo_leads.leads
    USING gin (nigredo_leads.search_keys_v1(tenant_id, search_text))
    WHERE deleted_at IS NULL;
DROP INDEX nigredo_leads.leads_tenant_live_search_idx;
DROP INDEX nigredo_leads.leads_tenant_live_search_joined_idx;

-- 054's function with the rare-term lookup on the keyed index (same arguments, same results;
-- the owner stays alquimista_leads_list). A text search reads, in order:
-- 1. the newest ten pages' worth of rows the other filters leave, with the exact predicate: a
--    broad term's page is there (as 054);
-- 2. otherwise every match in the scoped tenant from the keyed trigram index (candidates that
--    only hold the trigrams are dropped by the exact predicate), newest first;
-- 3. unless that finds more than fifty pages of matches: the term is broad after all, its
--    matches are just not among the newest rows, and reading them all costs more than walking
--    on (`acme` in the benchmark's big tenant under a thousand newer leads: 25,000 matches, 33
--    ms). The walk goes on where step 1 stopped, in chunks of growing size, each read through
--    the created_at index with a LIMIT (a plain `ORDER BY ... LIMIT` with the LIKE in WHERE
--    is planned on the LIKE's estimate, which for a substring is a guess: 10 rows for 2,703,
--    and a parallel scan of every tenant's leads).
CREATE OR REPLACE FUNCTION nigredo_leads.list_lead_ids_v1(
    p_status text,
    p_campaign uuid,
    p_owner uuid,
    p_tags text[],
    p_created_from timestamptz,
    p_created_to timestamptz,
    p_updated_from timestamptz,
    p_updated_to timestamptz,
    p_pattern text,
    p_after_at timestamptz,
    p_after_id uuid,
    p_limit integer
) RETURNS SETOF uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    scoped uuid := nullif(current_setting('app.current_tenant_id', true), '')::uuid;
    statement text := 'SELECT id, created_at, search_text FROM nigredo_leads.leads'
        ' WHERE tenant_id = $1 AND deleted_at IS NULL';
    chunk integer;
    walked integer;
    hits uuid[];
    page uuid[] := '{}';
    walk_at timestamptz := p_after_at;
    walk_id uuid := p_after_id;
    keys text[];
BEGIN
    IF scoped IS NULL THEN
        RETURN;
    END IF;
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
        RAISE EXCEPTION 'the page size must be between 1 and 1000'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_status IS NOT NULL THEN statement := statement || ' AND status = $2'; END IF;
    IF p_campaign IS NOT NULL THEN statement := statement || ' AND campanha_id = $3'; END IF;
    IF p_owner IS NOT NULL THEN statement := statement || ' AND assigned_to = $4'; END IF;
    IF p_tags IS NOT NULL THEN statement := statement || ' AND tags @> $5'; END IF;
    IF p_created_from IS NOT NULL THEN statement := statement || ' AND created_at >= $6'; END IF;
    IF p_created_to IS NOT NULL THEN statement := statement || ' AND created_at < $7'; END IF;
    IF p_updated_from IS NOT NULL THEN statement := statement || ' AND updated_at >= $8'; END IF;
    IF p_updated_to IS NOT NULL THEN statement := statement || ' AND updated_at < $9'; END IF;
    IF p_pattern IS NULL THEN
        IF p_after_at IS NOT NULL THEN
            statement := statement || ' AND (created_at, id) < ($11, $12)';
        END IF;
        RETURN QUERY EXECUTE 'SELECT id FROM (' || statement
            || ' ORDER BY created_at DESC, id DESC LIMIT $13) AS page'
            USING scoped, p_status, p_campaign, p_owner, p_tags, p_created_from, p_created_to,
                  p_updated_from, p_updated_to, p_pattern, p_after_at, p_after_id, p_limit;
        RETURN;
    END IF;
    p_pattern := lower(p_pattern);
    chunk := 10 * p_limit;
    LOOP
        -- the next `chunk` rows newest first after (walk_at, walk_id): their matches and the
        -- last row's position (one order for every aggregate: the rows come in it, unsorted)
        EXECUTE 'SELECT count(*), array_agg(id ORDER BY created_at DESC, id DESC)'
            || ' FILTER (WHERE search_text LIKE $10),'
            || ' (array_agg(created_at ORDER BY created_at DESC, id DESC))[count(*)],'
            || ' (array_agg(id ORDER BY created_at DESC, id DESC))[count(*)] FROM ('
            || statement
            || CASE WHEN walk_at IS NULL THEN '' ELSE ' AND (created_at, id) < ($11, $12)' END
            || ' ORDER BY created_at DESC, id DESC LIMIT $14) AS chunk'
            INTO walked, hits, walk_at, walk_id
            USING scoped, p_status, p_campaign, p_owner, p_tags, p_created_from, p_created_to,
                  p_updated_from, p_updated_to, p_pattern, walk_at, walk_id, p_limit, chunk;
        page := page || coalesce(hits, '{}');
        IF walked < chunk OR cardinality(page) >= p_limit THEN
            RETURN QUERY SELECT unnest(page[1:p_limit]);
            RETURN;
        END IF;
        IF keys IS NULL THEN
            keys := nigredo_leads.search_pattern_keys_v1(scoped, p_pattern);
            IF cardinality(keys) > 0 THEN
                EXECUTE 'SELECT array_agg(id ORDER BY created_at DESC, id DESC) FROM ('
                    || statement
                    || CASE WHEN p_after_at IS NULL THEN ''
                            ELSE ' AND (created_at, id) < ($11, $12)' END
                    || ' AND nigredo_leads.search_keys_v1(tenant_id, search_text) @> $14'
                    || ' AND search_text LIKE $10 LIMIT $15) AS matches'
                    INTO hits
                    USING scoped, p_status, p_campaign, p_owner, p_tags, p_created_from,
                          p_created_to, p_updated_from, p_updated_to, p_pattern, p_after_at,
                          p_after_id, p_limit, keys, 50 * p_limit;
                IF coalesce(cardinality(hits), 0) < 50 * p_limit THEN
                    RETURN QUERY SELECT unnest(hits[1:p_limit]);
                    RETURN;
                END IF;
            END IF;
        END IF;
        chunk := least(2 * chunk, 5000);
    END LOOP;
END
$$;

-- outbox_append_v1 (025) for many events of the caller's tenant in one statement: the same
-- tenant check, the same per-aggregate advisory locks (taken in key order, so two batches that
-- share aggregates wait for each other instead of deadlocking) and gap-free seqs in the order
-- of the arrays. p_payloads is a JSON array of the events' payloads (one jsonb value: a jsonb[]
-- is escaped element by element). Returns each event's id and seq, in the arrays' order.
CREATE FUNCTION alquimista_platform.outbox_append_many_v1(
    p_ids uuid[],
    p_tenant_id uuid,
    p_aggregate_types text[],
    p_aggregate_ids text[],
    p_event_types text[],
    p_payload_versions integer[],
    p_payloads jsonb
) RETURNS TABLE (id uuid, seq bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    scoped uuid := coalesce(
        nullif(current_setting('app.current_tenant_id', true), '')::uuid,
        '00000000-0000-0000-0000-000000000000'::uuid
    );
    events integer := coalesce(cardinality(p_ids), 0);
BEGIN
    IF p_tenant_id IS DISTINCT FROM scoped THEN
        RAISE EXCEPTION 'an event may only be emitted for the tenant of its transaction'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF coalesce(cardinality(p_aggregate_types), 0) <> events
        OR coalesce(cardinality(p_aggregate_ids), 0) <> events
        OR coalesce(cardinality(p_event_types), 0) <> events
        OR coalesce(cardinality(p_payload_versions), 0) <> events
        OR jsonb_typeof(p_payloads) IS DISTINCT FROM 'array'
        OR jsonb_array_length(p_payloads) <> events THEN
        RAISE EXCEPTION 'every event needs an id, an aggregate, a type, a version and a payload'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Volatile select-list functions run after the sort: the locks are taken in key order.
    PERFORM pg_advisory_xact_lock(1869968482, lock.key)
    FROM (
        SELECT DISTINCT hashtext(p_tenant_id::text || '/' || e.aggregate_type || '/'
                                 || e.aggregate_id) AS key
        FROM unnest(p_aggregate_types, p_aggregate_ids) AS e (aggregate_type, aggregate_id)
    ) AS lock
    ORDER BY lock.key;
    RETURN QUERY
    WITH event AS (
        SELECT e.ordinal, e.id, e.aggregate_type, e.aggregate_id, e.event_type,
               e.payload_version, p.payload,
               row_number() OVER (
                   PARTITION BY e.aggregate_type, e.aggregate_id ORDER BY e.ordinal
               ) AS nth
        FROM unnest(p_ids, p_aggregate_types, p_aggregate_ids, p_event_types,
                    p_payload_versions)
                 WITH ORDINALITY AS e (id, aggregate_type, aggregate_id, event_type,
                                       payload_version, ordinal)
        JOIN jsonb_array_elements(p_payloads) WITH ORDINALITY AS p (payload, ordinal)
            USING (ordinal)
    ), appended AS (
        INSERT INTO alquimista_platform.domain_outbox AS o (
            id, tenant_id, aggregate_type, aggregate_id, seq, event_type, payload_version,
            payload, created_at, available_at
        )
        SELECT event.id, p_tenant_id, event.aggregate_type, event.aggregate_id,
               last.seq + event.nth, event.event_type, event.payload_version, event.payload,
               clock_timestamp(), clock_timestamp()
        FROM event
        CROSS JOIN LATERAL (
            SELECT coalesce(max(d.seq), 0) AS seq
            FROM alquimista_platform.domain_outbox AS d
            WHERE d.tenant_id = p_tenant_id
              AND d.aggregate_type = event.aggregate_type
              AND d.aggregate_id = event.aggregate_id
        ) AS last
        ORDER BY event.ordinal
        RETURNING o.id, o.seq
    )
    SELECT event.id, appended.seq
    FROM event JOIN appended USING (id)
    ORDER BY event.ordinal;
END
$$;

ALTER FUNCTION alquimista_platform.outbox_append_many_v1(
    uuid[], uuid, text[], text[], text[], integer[], jsonb
) OWNER TO alquimista_outbox;
