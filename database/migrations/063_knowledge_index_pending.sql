-- The scheduled indexing of the vectors stored unindexed (migration 062): the
-- index_chat_embeddings job (lambdas/chat/jobs.py) runs as the runtime role with no tenant, which
-- row-level security lets update nothing, so it calls this function.
--
-- Privileged path: SECURITY DEFINER, owned by the NOLOGIN role alquimista_knowledge_indexer,
-- which may read the embeddings' ids and flags and update the flag alone, only from false to
-- true (its policies). It sees no text and changes no vector. EXECUTE is granted to the runtime role by
-- the migration runner (lambdas/migrations/roles.py), to no one else.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'alquimista_knowledge_indexer') THEN
        CREATE ROLE alquimista_knowledge_indexer NOLOGIN NOINHERIT;
    END IF;
    -- as for alquimista_knowledge_search (045): giving it a function needs SET ROLE to it
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT alquimista_knowledge_indexer TO %I', current_user);
    END IF;
END
$$;

GRANT USAGE ON SCHEMA knowledge TO alquimista_knowledge_indexer;
GRANT SELECT (id, indexed), UPDATE (indexed) ON knowledge.embeddings
    TO alquimista_knowledge_indexer;
CREATE POLICY index_pending_read ON knowledge.embeddings FOR SELECT
    TO alquimista_knowledge_indexer USING (true);
CREATE POLICY index_pending_write ON knowledge.embeddings FOR UPDATE
    TO alquimista_knowledge_indexer USING (NOT indexed) WITH CHECK (indexed);

-- Index up to p_limit of the vectors stored unindexed (any of them; rows another run holds are
-- skipped) and return how many. Setting the flag inserts each one into the partial HNSW index
-- (~4 ms a row).
CREATE FUNCTION knowledge.index_pending_embeddings_v1(p_limit integer) RETURNS integer
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH picked AS (
        SELECT p.id FROM knowledge.embeddings AS p
        WHERE NOT p.indexed
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), indexed AS (
        UPDATE knowledge.embeddings AS e SET indexed = true
        FROM picked
        WHERE e.id = picked.id
        RETURNING 1
    )
    SELECT count(*)::integer FROM indexed
$$;

ALTER FUNCTION knowledge.index_pending_embeddings_v1(integer)
    OWNER TO alquimista_knowledge_indexer;
REVOKE EXECUTE ON FUNCTION knowledge.index_pending_embeddings_v1(integer) FROM PUBLIC;
