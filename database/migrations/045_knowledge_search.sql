-- The hybrid search of the knowledge base as one function, so the full-text branch can use
-- its GIN index. Under row-level security PostgreSQL applies the policy before any condition
-- that is not LEAKPROOF, and `@@` (ts_match_vq) is not: as the runtime role the lexical branch
-- read every visible chunk (20,000 rows: ~200 ms) instead of probing chunks_search_idx.
--
-- Privileged path: the function is SECURITY DEFINER, owned by the NOLOGIN role
-- alquimista_knowledge_search, which may only read the three tables and has a policy that
-- sees all their rows. The function applies the visibility rule of the global_read and
-- tenant_isolation policies itself: the request's tenant (app.current_tenant_id, set by the
-- request scope) and the global rows; with no tenant set it returns nothing. It takes no tenant
-- argument, so a caller cannot ask for another tenant's chunks. EXECUTE is granted to the
-- runtime role by the migration runner (lambdas/migrations/roles.py), to no one else.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'alquimista_knowledge_search') THEN
        CREATE ROLE alquimista_knowledge_search NOLOGIN NOINHERIT;
    END IF;
    -- Giving a function to a role needs the right to SET ROLE to it; a superuser has it already,
    -- a CREATEROLE owner (Aurora's master user) holds ADMIN on the role it created.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT alquimista_knowledge_search TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE ON SCHEMA knowledge TO alquimista_knowledge_search;
GRANT SELECT ON knowledge.documents, knowledge.chunks, knowledge.embeddings
    TO alquimista_knowledge_search;
CREATE POLICY search_function_read ON knowledge.documents FOR SELECT
    TO alquimista_knowledge_search USING (true);
CREATE POLICY search_function_read ON knowledge.chunks FOR SELECT
    TO alquimista_knowledge_search USING (true);
CREATE POLICY search_function_read ON knowledge.embeddings FOR SELECT
    TO alquimista_knowledge_search USING (true);

-- The k best ready chunks for a question: the vector ranking (HNSW on halfvec, cosine; the
-- caller sets hnsw.ef_search and hnsw.iterative_scan for its transaction) and the full-text
-- ranking (portuguese; websearch syntax, any term may match) fused by reciprocal rank.
CREATE FUNCTION knowledge.search_chunks_v1(
    p_embedding public.vector,
    p_model text,
    p_text text,
    p_candidates integer,
    p_rrf_k integer,
    p_k integer
) RETURNS TABLE (
    chunk_id uuid,
    semantic_rank bigint,
    lexical_rank bigint,
    score double precision,
    document_id uuid,
    tenant_id uuid,
    chunk_index integer,
    content text,
    title text
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- A generic plan cannot see the LIMIT, and sorts every embedding instead of reading the HNSW
-- index (1.4 s on 20,000 rows, against ~10 ms): plan each call with its values.
SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
    -- Exactly the policies' reading of the setting: unset or empty is no tenant.
    scope constant uuid := nullif(current_setting('app.current_tenant_id', true), '')::uuid;
    query_vector public.halfvec(1536);
    query_text tsquery;
BEGIN
    IF scope IS NULL THEN
        RETURN;
    END IF;
    query_vector := p_embedding::public.halfvec(1536);
    query_text := replace(websearch_to_tsquery('portuguese', p_text)::text, ' & ', ' | ')::tsquery;
    RETURN QUERY
    WITH semantic AS MATERIALIZED (
        SELECT e.chunk_id,
               e.embedding::public.halfvec(1536) OPERATOR(public.<=>) query_vector AS distance
        FROM knowledge.embeddings AS e
        WHERE e.embedding_model = p_model
          AND (e.tenant_id IS NULL OR e.tenant_id = scope)
        ORDER BY e.embedding::public.halfvec(1536) OPERATOR(public.<=>) query_vector
        LIMIT p_candidates
    ), semantic_ranked AS (
        -- relaxed_order may return the candidates slightly out of order: rank them exactly
        SELECT s.chunk_id, row_number() OVER (ORDER BY s.distance, s.chunk_id) AS rank
        FROM semantic AS s
    ), lexical AS (
        SELECT c.id AS chunk_id,
               row_number() OVER (ORDER BY ts_rank_cd(c.search_vector, query_text) DESC, c.id)
                   AS rank
        FROM knowledge.chunks AS c
        WHERE c.search_vector @@ query_text
          AND (c.tenant_id IS NULL OR c.tenant_id = scope)
        ORDER BY rank
        LIMIT p_candidates
    ), fused AS (
        SELECT chunk_id, s.rank AS semantic_rank, l.rank AS lexical_rank,
               coalesce(1.0 / (p_rrf_k + s.rank), 0) + coalesce(1.0 / (p_rrf_k + l.rank), 0)
                   AS score
        FROM semantic_ranked AS s FULL JOIN lexical AS l USING (chunk_id)
    )
    SELECT f.chunk_id, f.semantic_rank, f.lexical_rank, f.score::float8,
           c.document_id, c.tenant_id, c.chunk_index, c.content, d.title
    FROM fused AS f
    JOIN knowledge.chunks AS c ON c.id = f.chunk_id
    JOIN knowledge.documents AS d ON d.id = c.document_id
    WHERE d.status = 'ready'
      AND (c.tenant_id IS NULL OR c.tenant_id = scope)
    ORDER BY f.score DESC, f.chunk_id
    LIMIT p_k;
END
$$;

ALTER FUNCTION knowledge.search_chunks_v1(public.vector, text, text, integer, integer, integer)
    OWNER TO alquimista_knowledge_search;
REVOKE EXECUTE ON FUNCTION
    knowledge.search_chunks_v1(public.vector, text, text, integer, integer, integer) FROM PUBLIC;
