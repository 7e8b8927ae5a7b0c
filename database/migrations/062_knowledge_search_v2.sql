-- The knowledge search, version 2: an exact scan when the request's scope holds few vectors,
-- the HNSW index otherwise; and the vectors stored in the row instead of in TOAST.
--
-- Why (docs/benchmarks.md, "Knowledge base against ChromaDB"): a tenant holding 10 % of 20,000
-- rows took 27 to 60 ms through search_chunks_v1, depending on the graph each index build
-- happened to make, because the iterative scan walks the graph until enough of the tenant's rows
-- turn up. An exact scan of the tenant's and the global rows costs the same every time and
-- grows only with their number: ~2.5 us a row with the vector in the row, ~5 us through TOAST.
--
-- Storage PLAIN: a vector(1536) is 6 KB, over the TOAST threshold, so until now each vector was
-- cut into four TOAST chunks found through the TOAST index. Stored in the row (one row a page)
-- it takes the same space and is read in one buffer. Rows written before this migration stay in
-- TOAST until they are written again; both are read alike, only slower.
ALTER TABLE knowledge.embeddings ALTER COLUMN embedding SET STORAGE PLAIN;

-- Deferred indexing. Inserting a vector into the HNSW graph costs ~4 ms (it rewrites its
-- neighbours' lists), 400 ms for a 100-chunk document. A writer may store vectors with indexed
-- false: they are outside the (now partial) HNSW index, the search compares them exactly
-- (embeddings_pending_idx finds a scope's), and the index_chat_embeddings job
-- (knowledge.index_pending_embeddings_v1, migration 063) sets indexed, which inserts them into
-- the graph outside the writer's transaction. The default is indexed: every writer that does
-- not ask for it keeps writing into the graph (or, in a bulk load, into the rebuilt one).
ALTER TABLE knowledge.embeddings ADD COLUMN indexed boolean NOT NULL DEFAULT true;
DROP INDEX knowledge.embeddings_hnsw_idx;
CREATE INDEX embeddings_hnsw_idx ON knowledge.embeddings
    USING hnsw ((embedding::halfvec(1536)) halfvec_cosine_ops) WHERE indexed;
CREATE INDEX embeddings_pending_idx ON knowledge.embeddings (tenant_id, embedding_model)
    WHERE NOT indexed;

-- The k best ready chunks for a question, as search_chunks_v1 (same columns, same fusion of the
-- vector and full-text rankings by reciprocal rank, same visibility rule: the request's tenant
-- and the global rows, nothing with no tenant set), with the vector ranking chosen by size:
-- - at most p_exact_rows chunks visible (in ready documents, the sum of their chunk_count): every
--   vector of the model among them compared exactly (vector, cosine), found through
--   embeddings_chunk_model_key (led by tenant_id);
-- - more: the HNSW index on halfvec with an iterative scan, hnsw.ef_search at
--   greatest(p_ef_search, p_candidates) (both settings last until the function returns), and
--   the scope's vectors not indexed yet compared exactly.
CREATE FUNCTION knowledge.search_chunks_v2(
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
    visible bigint;
    semantic_ids uuid[];
    query_text tsquery;
BEGIN
    IF scope IS NULL THEN
        RETURN;
    END IF;
    -- The scope's ready documents know their chunks: summing at most p_exact_rows + 1 of them
    -- (each holds one or more) reads a few index entries, where counting the embeddings
    -- themselves cost ~0.3 us a row, 0.5-0.8 ms on every HNSW search at a cap of 3,000.
    SELECT coalesce(sum(d.chunk_count), 0) INTO visible FROM (
        SELECT d.chunk_count FROM knowledge.documents AS d
        WHERE (d.tenant_id IS NULL OR d.tenant_id = scope) AND d.status = 'ready'
        LIMIT p_exact_rows + 1
    ) AS d;
    IF visible <= p_exact_rows THEN
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
        -- Planned at each call with its values (EXECUTE): a generic plan cannot see the LIMIT
        -- and sorts every embedding instead of reading the HNSW index. relaxed_order may return
        -- the candidates slightly out of order: they are ranked exactly.
        EXECUTE $semantic$
            SELECT array_agg(s.chunk_id ORDER BY s.distance, s.chunk_id)
            FROM (
                (SELECT e.chunk_id,
                        e.embedding::public.halfvec(1536)
                            OPERATOR(public.<=>) $1::public.halfvec(1536) AS distance
                 FROM knowledge.embeddings AS e
                 WHERE e.indexed
                   AND e.embedding_model = $2
                   AND (e.tenant_id IS NULL OR e.tenant_id = $3)
                 ORDER BY e.embedding::public.halfvec(1536)
                     OPERATOR(public.<=>) $1::public.halfvec(1536)
                 LIMIT $4)
                UNION ALL
                -- the vectors not in the graph yet, compared exactly
                (SELECT e.chunk_id,
                        e.embedding::public.halfvec(1536)
                            OPERATOR(public.<=>) $1::public.halfvec(1536) AS distance
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
        USING p_embedding, p_model, scope, p_candidates;
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

ALTER FUNCTION knowledge.search_chunks_v2(
    public.vector, text, text, integer, integer, integer, integer, integer
) OWNER TO alquimista_knowledge_search;
REVOKE EXECUTE ON FUNCTION knowledge.search_chunks_v2(
    public.vector, text, text, integer, integer, integer, integer, integer
) FROM PUBLIC;
