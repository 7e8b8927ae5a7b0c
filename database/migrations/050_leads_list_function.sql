-- The leads list with a text search or a tag filter. ILIKE and @> are not leakproof, so under
-- the runtime role's row-level security the planner may not evaluate them inside an index (it
-- would see other tenants' rows first): the trigram and tag indexes went unused and a text
-- search read every lead of every tenant. This function runs as alquimista_leads_list, a
-- NOLOGIN role whose own policy lets it read leads (SELECT only), and takes the tenant from the
-- transaction's app.current_tenant_id, never from its caller: it returns the ids of one page of
-- the scoped tenant's live leads. Callers read the rows by those ids under their own RLS.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'alquimista_leads_list') THEN
        CREATE ROLE alquimista_leads_list NOLOGIN NOINHERIT;
    END IF;
    -- Giving a function to a role needs the right to SET ROLE to it (see 025).
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT alquimista_leads_list TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE ON SCHEMA nigredo_leads TO alquimista_leads_list;
GRANT SELECT ON nigredo_leads.leads TO alquimista_leads_list;
CREATE POLICY leads_list_function ON nigredo_leads.leads
    FOR SELECT TO alquimista_leads_list USING (true);

-- Only the filters given reach the statement (EXECUTE plans it for its values each time, so
-- the trigram index is chosen when the term is selective and the created_at index when not).
-- p_pattern is an ILIKE pattern (the caller escapes the user's term).
CREATE FUNCTION nigredo_leads.list_lead_ids_v1(
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
    statement text := 'SELECT id FROM nigredo_leads.leads'
        ' WHERE tenant_id = $1 AND deleted_at IS NULL';
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
    IF p_pattern IS NOT NULL THEN
        statement := statement || ' AND (coalesce(full_name, '''') || '' '' || coalesce(company, '''')'
            ' || '' '' || coalesce(email_normalized, '''')) ILIKE $10';
    END IF;
    IF p_after_at IS NOT NULL THEN
        statement := statement || ' AND (created_at, id) < ($11, $12)';
    END IF;
    RETURN QUERY EXECUTE statement || ' ORDER BY created_at DESC, id DESC LIMIT $13'
        USING scoped, p_status, p_campaign, p_owner, p_tags, p_created_from, p_created_to,
              p_updated_from, p_updated_to, p_pattern, p_after_at, p_after_id, p_limit;
END
$$;

-- A non-superuser owner (Aurora's master user) may give a function only to a role that could
-- have created it there: CREATE on the schema, for the hand-over only.
GRANT CREATE ON SCHEMA nigredo_leads TO alquimista_leads_list;
ALTER FUNCTION nigredo_leads.list_lead_ids_v1(
    text, uuid, uuid, text[], timestamptz, timestamptz, timestamptz, timestamptz, text,
    timestamptz, uuid, integer
) OWNER TO alquimista_leads_list;
REVOKE CREATE ON SCHEMA nigredo_leads FROM alquimista_leads_list;
