-- The leads list's text search decides from each key's count which way to read, instead of
-- finding out by reading (docs/benchmarks.md, "## Leads").
--
-- 059's list_lead_ids_v1 reads the newest ten pages with the exact LIKE, then looks up every
-- key of the term in the keyed GIN index. Two costs of that order, measured at 100,000 leads:
-- 1. A rare term paid both steps, and the lookup decoded the posting lists of all its keys,
--    common ones included: `acme 12`'s keys are `acm`, `cme` (in 25,000 leads each), `me1`
--    (2,480) and `e12` (279); the lookup with all four took 1.04 ms, with `e12` alone 0.46 ms
--    for the same 279 candidates.
-- 2. A broad term whose matches are not among the newest rows was looked up before the walk
--    went on: `acme` under a thousand newer leads decoded 25,000 postings (8 ms) to learn it
--    was broad.
--
-- search_key_counts holds, per tenant, how many live leads hold each key that at least
-- KEY_COUNT_FLOOR (64) of them hold; a key absent from it is held by fewer. The row with the
-- empty key holds the tenant's live leads: the tenant was counted. The daily job
-- count_lead_search_keys rewrites a tenant's rows (LeadRepository.count_search_keys). The
-- counts only steer the reading: the exact LIKE decides every row, so stale counts (leads
-- written since the last count) cost time, never a match.
--
-- list_lead_ids_v2 (same arguments and results as v1; v1 stays for code deployed before this
-- migration, and answers for a tenant not counted yet): for a text search, the term's keys and
-- their counts, then
-- - when its rarest key is held by at most fifty pages of leads: the keyed lookup with the keys
--   held by at most four times as many leads as the rarest (every uncounted key when the rarest
--   is uncounted), a superset of the matches that skips decoding the common keys' lists (the
--   keys of every match hold all of the term's); unless the lookup finds more than
--   fifty pages of matches (the counts were stale), that is the answer;
-- - otherwise (a broad term, a term without keys, or stale counts): the walk newest first in
--   chunks of growing size, as v1 walks after its lookup.

CREATE TABLE nigredo_leads.search_key_counts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    key         text NOT NULL,
    leads       integer NOT NULL CHECK (leads > 0),  -- the empty key: the tenant's live leads
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, key)
);
SELECT public.attach_updated_at('nigredo_leads.search_key_counts');
SELECT public.enable_tenant_rls('nigredo_leads.search_key_counts');
-- the list function's owner reads the scoped tenant's counts under the tenant policy
GRANT SELECT ON nigredo_leads.search_key_counts TO alquimista_leads_list;

CREATE FUNCTION nigredo_leads.list_lead_ids_v2(
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
    counted_keys text[];
    counts integer[];
    counted boolean;
    fewest integer;
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
    -- the term's keys, the counts of those counted (an uncounted key: fewer than the floor),
    -- and whether the tenant was counted at all
    keys := nigredo_leads.search_pattern_keys_v1(scoped, lower(p_pattern));
    SELECT coalesce(array_agg(c.key ORDER BY c.leads, c.key) FILTER (WHERE c.key <> ''), '{}'),
           coalesce(array_agg(c.leads ORDER BY c.leads, c.key) FILTER (WHERE c.key <> ''), '{}'),
           coalesce(bool_or(c.key = ''), false)
    INTO counted_keys, counts, counted
    FROM nigredo_leads.search_key_counts AS c
    WHERE c.tenant_id = scoped AND c.key = ANY (keys || ''::text);
    IF NOT counted THEN
        -- not counted yet (a new tenant; or one too small for any key to reach the floor):
        -- 059's order, the newest pages first
        RETURN QUERY SELECT nigredo_leads.list_lead_ids_v1(
            p_status, p_campaign, p_owner, p_tags, p_created_from, p_created_to, p_updated_from,
            p_updated_to, p_pattern, p_after_at, p_after_id, p_limit);
        RETURN;
    END IF;
    p_pattern := lower(p_pattern);
    IF cardinality(counted_keys) < cardinality(keys) THEN
        fewest := 0;  -- the uncounted keys alone
        keys := ARRAY(SELECT key FROM unnest(keys) AS key WHERE key <> ALL (counted_keys));
    ELSIF cardinality(keys) > 0 THEN
        fewest := counts[1];  -- the rarest and those within four times its count
        keys := counted_keys[1:cardinality(ARRAY(
            SELECT n FROM unnest(counts) AS n WHERE n <= 4 * fewest))];
    END IF;
    IF fewest IS NOT NULL AND fewest <= 50 * p_limit THEN
        EXECUTE 'SELECT array_agg(id ORDER BY created_at DESC, id DESC) FROM ('
            || statement
            || CASE WHEN p_after_at IS NULL THEN ''
                    ELSE ' AND (created_at, id) < ($11, $12)' END
            || ' AND nigredo_leads.search_keys_v1(tenant_id, search_text) @> $14'
            || ' AND search_text LIKE $10 LIMIT $15) AS matches'
            INTO hits
            USING scoped, p_status, p_campaign, p_owner, p_tags, p_created_from, p_created_to,
                  p_updated_from, p_updated_to, p_pattern, p_after_at, p_after_id, p_limit,
                  keys, 50 * p_limit;
        IF coalesce(cardinality(hits), 0) < 50 * p_limit THEN
            RETURN QUERY SELECT unnest(hits[1:p_limit]);
            RETURN;
        END IF;
    END IF;
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
        chunk := least(2 * chunk, 5000);
    END LOOP;
END
$$;

-- A non-superuser owner (Aurora's master user) may give a function only to a role that could
-- have created it there: CREATE on the schema, for the hand-over only (as 050).
GRANT CREATE ON SCHEMA nigredo_leads TO alquimista_leads_list;
ALTER FUNCTION nigredo_leads.list_lead_ids_v2(
    text, uuid, uuid, text[], timestamptz, timestamptz, timestamptz, timestamptz, text,
    timestamptz, uuid, integer
) OWNER TO alquimista_leads_list;
REVOKE CREATE ON SCHEMA nigredo_leads FROM alquimista_leads_list;
