-- The knowledge search, version 3: search_chunks_v2's results (same columns, same rows, same
-- order) for less work in the server. search_chunks_v2 stays for code deployed before this
-- migration.
--
-- Why (docs/benchmarks.md, "Knowledge base against ChromaDB"): over 20,000 global rows the
-- search's p50 was 1.09x Chroma's. Timed in the server on that data (2026-12-02, 200 queries,
-- the two functions alternating, per-call p50): v2 2.31-2.53 ms, this version 1.92 ms with the
-- same results for every query. The changes:
-- - The question's vector is cast to halfvec once, here, and handed to the HNSW statement as a
--   halfvec. v2 cast it inside the statement, where a parameter is not folded: once more for
--   every candidate's distance (~0.35 ms).
-- - The scope's vectors not in the graph yet (indexed false) are searched only when there are
--   some, found through embeddings_pending_idx; otherwise the HNSW statement is planned without
--   the second branch (~0.4 ms in planning and its empty scan).
-- - Which path: v2 summed the chunk_count of up to p_exact_rows + 1 ready documents, one row per
--   document of the scope up to that many. This stops at the first document where the running
--   sum passes p_exact_rows: a scope of many documents reads only as many as it takes.
-- - The chunks' text and the documents' titles are read for the fused ranking's best rows only,
--   in order, until p_k of them are in ready documents of the scope; v2 read every candidate's
--   (4 per result) and sorted them.
CREATE FUNCTION knowledge.search_chunks_v3(
    p_embedding public.vector,
    p_model text,
    p_text text,
    p_candidates integer,
    p_rrf_k integer,
    p_k integer,
    p_ef_search integer,
    p_exact_rows integer
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
-- Restored when the function returns, whatever it set inside.
SET hnsw.ef_search = 40
SET hnsw.iterative_scan = relaxed_order
AS $$
#variable_conflict use_column
DECLARE
    -- Exactly the policies' reading of the setting: unset or empty is no tenant.
    scope constant uuid := nullif(current_setting('app.current_tenant_id', true), '')::uuid;
    semantic_ids uuid[];
    query_text tsquery;
    query_half public.halfvec(1536);
BEGIN
    IF scope IS NULL THEN
        RETURN;
    END IF;
    IF NOT EXISTS (
        SELECT FROM (
            SELECT sum(d.chunk_count) OVER (ROWS UNBOUNDED PRECEDING) AS running
            FROM knowledge.documents AS d
            WHERE (d.tenant_id IS NULL OR d.tenant_id = scope) AND d.status = 'ready'
        ) AS r
        WHERE r.running > p_exact_rows
    ) THEN
        -- The distance on the vector column itself: no index orders by it, so this is exact.
        SELECT array_agg(s.chunk_id ORDER BY s.distance, s.chunk_id) INTO semantic_ids
        FROM (
            SELECT e.chunk_id, e.embedding OPERATOR(public.<=>) p_embedding AS distance
            FROM knowledge.embeddings AS e
            WHERE e.embedding_model = p_model
              AND (e.tenant_id IS NULL OR e.tenant_id = scope)
            ORDER BY distance
            LIMIT p_candidates
        ) AS s;
    ELSE
        PERFORM set_config('hnsw.ef_search', greatest(p_ef_search, p_candidates)::text, true);
        query_half := p_embedding::public.halfvec(1536);
        -- Planned at each call with its values (EXECUTE): a generic plan cannot see the LIMIT
        -- and may sort every embedding instead of reading the HNSW index. relaxed_order may
        -- return the candidates slightly out of order: they are ranked exactly.
        IF EXISTS (
            SELECT FROM knowledge.embeddings AS e
            WHERE NOT e.indexed
              AND e.embedding_model = p_model
              AND (e.tenant_id IS NULL OR e.tenant_id = scope)
        ) THEN
            EXECUTE $semantic$
                SELECT array_agg(s.chunk_id ORDER BY s.distance, s.chunk_id)
                FROM (
                    (SELECT e.chunk_id,
                            e.embedding::public.halfvec(1536) OPERATOR(public.<=>) $1 AS distance
                     FROM knowledge.embeddings AS e
                     WHERE e.indexed
                       AND e.embedding_model = $2
                       AND (e.tenant_id IS NULL OR e.tenant_id = $3)
                     ORDER BY e.embedding::public.halfvec(1536) OPERATOR(public.<=>) $1
                     LIMIT $4)
                    UNION ALL
                    -- the vectors not in the graph yet, compared exactly
                    (SELECT e.chunk_id,
                            e.embedding::public.halfvec(1536) OPERATOR(public.<=>) $1 AS distance
                     FROM knowledge.embeddings AS e
                     WHERE NOT e.indexed
                       AND e.embedding_model = $2
                       AND (e.tenant_id IS NULL OR e.tenant_id = $3)
                     ORDER BY distance
                     LIMIT $4)
                    ORDER BY distance
                    LIMIT $4
                ) AS s
            $semantic$
            INTO semantic_ids
            USING query_half, p_model, scope, p_candidates;
        ELSE
            EXECUTE $semantic$
                SELECT array_agg(s.chunk_id ORDER BY s.distance, s.chunk_id)
                FROM (
                    SELECT e.chunk_id,
                           e.embedding::public.halfvec(1536) OPERATOR(public.<=>) $1 AS distance
                    FROM knowledge.embeddings AS e
                    WHERE e.indexed
                      AND e.embedding_model = $2
                      AND (e.tenant_id IS NULL OR e.tenant_id = $3)
                    ORDER BY e.embedding::public.halfvec(1536) OPERATOR(public.<=>) $1
                    LIMIT $4
                ) AS s
            $semantic$
            INTO semantic_ids
            USING query_half, p_model, scope, p_candidates;
        END IF;
    END IF;
    query_text := replace(websearch_to_tsquery('portuguese', p_text)::text, ' & ', ' | ')::tsquery;
    RETURN QUERY
    WITH semantic AS (
        SELECT s.chunk_id, s.rank
        FROM unnest(semantic_ids) WITH ORDINALITY AS s (chunk_id, rank)
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
        FROM semantic AS s FULL JOIN lexical AS l USING (chunk_id)
    )
    -- best first, each candidate's chunk and document read in that order until p_k are found
    SELECT f.chunk_id, f.semantic_rank, f.lexical_rank, f.score::float8,
           x.document_id, x.tenant_id, x.chunk_index, x.content, x.title
    FROM (SELECT * FROM fused ORDER BY fused.score DESC, fused.chunk_id) AS f
    CROSS JOIN LATERAL (
        SELECT c.document_id, c.tenant_id, c.chunk_index, c.content, d.title
        FROM knowledge.chunks AS c
        JOIN knowledge.documents AS d ON d.id = c.document_id
        WHERE c.id = f.chunk_id
          AND d.status = 'ready'
          AND (c.tenant_id IS NULL OR c.tenant_id = scope)
    ) AS x
    ORDER BY f.score DESC, f.chunk_id
    LIMIT p_k;
END
$$;

ALTER FUNCTION knowledge.search_chunks_v3(
    public.vector, text, text, integer, integer, integer, integer, integer
) OWNER TO alquimista_knowledge_search;
REVOKE EXECUTE ON FUNCTION knowledge.search_chunks_v3(
    public.vector, text, text, integer, integer, integer, integer, integer
) FROM PUBLIC;
