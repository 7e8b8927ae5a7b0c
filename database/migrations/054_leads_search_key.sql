-- The leads list's text search: a case-insensitive substring of "name company e-mail".
-- Measured at 100,000 leads (docs/benchmarks.md, "## Leads"), 031's trigram index on that
-- expression was slow in two ways:
-- * a broad term ("acme", "pessoa 4": thousands of matches) still went through the trigram
--   index (the planner may not use LIKE's column statistics under row-level security, since
--   LIKE is not leakproof): 25,000 candidates fetched and sorted for a page of 50 (65-140 ms);
-- * pg_trgm makes trigrams inside words only, so `acme 12` looked up "acme" (every Acme lead of
--   every tenant) and a word starting "12": ~1,030 candidates rechecked on the heap, the
--   concatenation rebuilt per row, for 279 matches.
-- Now the text is stored once, lowercased (search_text), and list_lead_ids_v1 first reads the
-- newest rows the other filters leave (ten pages' worth): a broad term's page is there. Only a
-- rarer term goes to a trigram index led by the tenant among live rows: on search_text, or, for
-- a term with spaces, on search_text without its spaces, where `acme 12` is "acme12" and its
-- cross-word trigrams ("me1", "e12") are rare. Removing the spaces from the text and the term
-- keeps every real match (a substring stays a substring) and the exact predicate drops the rest
-- ("acme12" also matches "Acme 1 2"): the results are those of 031's ILIKE.
CREATE EXTENSION IF NOT EXISTS btree_gin;

ALTER TABLE nigredo_leads.leads
    ADD COLUMN search_text text GENERATED ALWAYS AS (
        lower(coalesce(full_name, '') || ' ' || coalesce(company, '') || ' '
              || coalesce(email_normalized, ''))
    ) STORED;

CREATE INDEX leads_tenant_live_search_idx ON nigredo_leads.leads
    USING gin (tenant_id, search_text gin_trgm_ops)
    WHERE deleted_at IS NULL;
CREATE INDEX leads_tenant_live_search_joined_idx ON nigredo_leads.leads
    USING gin (tenant_id, replace(search_text, ' ', '') gin_trgm_ops)
    WHERE deleted_at IS NULL;
DROP INDEX nigredo_leads.leads_search_trgm_idx;

-- 050's function with the text predicate on the new column (same arguments, same results; the
-- owner stays alquimista_leads_list). p_pattern is still an ILIKE pattern of the user's term
-- (escaped by the caller): its escapes survive lower() and losing spaces.
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
    newest integer;
    walked integer;
    page uuid[];
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
    IF p_after_at IS NOT NULL THEN
        statement := statement || ' AND (created_at, id) < ($11, $12)';
    END IF;
    IF p_pattern IS NOT NULL THEN
        p_pattern := lower(p_pattern);
        -- A broad term (a company, a first name) matches thousands of leads: when one in ten
        -- of the newest rows the other filters leave match, the page is among them, so read
        -- those first (~1 ms). Under row-level security the planner may not use the column's
        -- statistics for LIKE (not leakproof), so it cannot tell a broad term from a rare one
        -- and would take the trigram index for both (140 ms for "acme": 25,000 candidates).
        newest := 10 * p_limit;
        EXECUTE 'SELECT count(*), (array_agg(id ORDER BY created_at DESC, id DESC)'
            || ' FILTER (WHERE search_text LIKE $10))[1:$13] FROM ('
            || statement || ' ORDER BY created_at DESC, id DESC LIMIT $14) AS newest'
            INTO walked, page
            USING scoped, p_status, p_campaign, p_owner, p_tags, p_created_from, p_created_to,
                  p_updated_from, p_updated_to, p_pattern, p_after_at, p_after_id, p_limit,
                  newest;
        IF walked < newest OR cardinality(page) >= p_limit THEN
            RETURN QUERY SELECT unnest(page);
            RETURN;
        END IF;
        -- A rare term: its candidates from a trigram index (EXECUTE plans with the values, so
        -- the index sees the term as a constant), then the exact predicate. Words of a term
        -- with spaces are looked up joined (their cross-word trigrams are the rare ones; the
        -- exact predicate is then kept off the other index: `|| ''`).
        IF strpos(p_pattern, ' ') > 0 THEN
            statement := statement
                || ' AND replace(search_text, '' '', '''') LIKE replace($10, '' '', '''')'
                || ' AND (search_text || '''') LIKE $10';
        ELSE
            statement := statement || ' AND search_text LIKE $10';
        END IF;
    END IF;
    RETURN QUERY EXECUTE 'SELECT id FROM (' || statement
        || ' ORDER BY created_at DESC, id DESC LIMIT $13) AS page'
        USING scoped, p_status, p_campaign, p_owner, p_tags, p_created_from, p_created_to,
              p_updated_from, p_updated_to, p_pattern, p_after_at, p_after_id, p_limit;
END
$$;
