-- The knowledge base for chat with RAG (documents, chunks, embeddings), chat sessions and
-- messages with their citations and feedback, and per-tenant token quotas with reservations.
CREATE SCHEMA IF NOT EXISTS knowledge;
CREATE SCHEMA IF NOT EXISTS chat;

-- Operators (whoever owns the schema: the migration role, an operator's psql) write global
-- documents; the runtime role owns nothing, so it never passes this test.
CREATE FUNCTION knowledge.is_operator() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT pg_has_role(current_user, n.nspowner, 'MEMBER')
    FROM pg_namespace AS n WHERE n.nspname = 'knowledge'
$$;

-- Global-or-tenant tables: tenant_id NULL is a global row (the platform's own knowledge),
-- readable by every tenant and written only by operators; a tenant's rows follow the usual
-- tenant isolation.
CREATE FUNCTION knowledge.enable_global_or_tenant_rls(target regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.enable_tenant_rls(target);
    EXECUTE format(
        $policy$CREATE POLICY global_read ON %s FOR SELECT
            USING (tenant_id IS NULL
                   OR tenant_id = nullif(current_setting('app.current_tenant_id', true), '')::uuid)
        $policy$,
        target
    );
    EXECUTE format(
        $policy$CREATE POLICY global_operator_write ON %s
            USING (tenant_id IS NULL AND knowledge.is_operator())
            WITH CHECK (tenant_id IS NULL AND knowledge.is_operator())
        $policy$,
        target
    );
END
$$;
REVOKE EXECUTE ON FUNCTION knowledge.enable_global_or_tenant_rls(regclass) FROM PUBLIC;

CREATE TABLE knowledge.documents (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    title         text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 500),
    source        text NOT NULL CHECK (length(source) BETWEEN 1 AND 2000),
    s3_key        text,
    file_sha256   text NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{64}$'),
    content_type  text NOT NULL DEFAULT 'text/plain',
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
    error         text,
    chunk_count   integer NOT NULL DEFAULT 0 CHECK (chunk_count >= 0),
    created_by    uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT documents_source_key UNIQUE NULLS NOT DISTINCT (tenant_id, source),
    CONSTRAINT documents_sha256_key UNIQUE NULLS NOT DISTINCT (tenant_id, file_sha256),
    -- the target of the chunks' same-tenant foreign key
    CONSTRAINT documents_tenant_key UNIQUE (id, tenant_id)
);
CREATE INDEX documents_tenant_idx ON knowledge.documents (tenant_id, created_at DESC);
-- Similar titles in the same scope are found with `%` (pg_trgm.similarity_threshold). The
-- operator's function is declared with the default cost of 1, so the planner preferred reading
-- every title of a scope (1 s for 20,000 titles) to the trigram index (40 ms): tell it the truth.
CREATE INDEX documents_title_trgm_idx ON knowledge.documents USING gin (title gin_trgm_ops);
ALTER FUNCTION public.similarity_op(text, text) COST 200;
SELECT public.attach_updated_at('knowledge.documents');
SELECT knowledge.enable_global_or_tenant_rls('knowledge.documents');

CREATE TABLE knowledge.chunks (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    document_id    uuid NOT NULL REFERENCES knowledge.documents (id) ON DELETE CASCADE,
    chunk_index    integer NOT NULL CHECK (chunk_index >= 0),
    content        text NOT NULL,
    token_count    integer NOT NULL CHECK (token_count >= 0),
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    search_vector  tsvector GENERATED ALWAYS AS (to_tsvector('portuguese', content)) STORED,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chunks_position_key UNIQUE NULLS NOT DISTINCT (tenant_id, document_id, chunk_index),
    -- a tenant's chunk belongs to a document of the same tenant
    CONSTRAINT chunks_document_tenant_fkey FOREIGN KEY (document_id, tenant_id)
        REFERENCES knowledge.documents (id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX chunks_document_idx ON knowledge.chunks (document_id);
CREATE INDEX chunks_search_idx ON knowledge.chunks USING gin (search_vector);
SELECT public.attach_updated_at('knowledge.chunks');
SELECT knowledge.enable_global_or_tenant_rls('knowledge.chunks');

-- One vector per chunk and embedding model: a model change re-embeds instead of mixing spaces.
CREATE TABLE knowledge.embeddings (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    chunk_id         uuid NOT NULL REFERENCES knowledge.chunks (id) ON DELETE CASCADE,
    embedding_model  text NOT NULL CHECK (length(embedding_model) BETWEEN 1 AND 200),
    dimension        integer NOT NULL DEFAULT 1536 CHECK (dimension = 1536),
    embedding        vector(1536) NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT embeddings_chunk_model_key
        UNIQUE NULLS NOT DISTINCT (tenant_id, chunk_id, embedding_model)
);
CREATE INDEX embeddings_chunk_idx ON knowledge.embeddings (chunk_id);
-- Half-precision HNSW: half the index size, same recall at this dimension.
CREATE INDEX embeddings_hnsw_idx ON knowledge.embeddings
    USING hnsw ((embedding::halfvec(1536)) halfvec_cosine_ops);
SELECT public.attach_updated_at('knowledge.embeddings');
SELECT knowledge.enable_global_or_tenant_rls('knowledge.embeddings');

-- Chat sessions, messages, their citations and feedback.
CREATE TABLE chat.sessions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES alquimista_platform.users (id) ON DELETE CASCADE,
    title       text NOT NULL DEFAULT '' CHECK (length(title) <= 200),
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    closed_at   timestamptz,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX sessions_tenant_user_idx ON chat.sessions (tenant_id, user_id, created_at DESC);
SELECT public.attach_updated_at('chat.sessions');
SELECT public.enable_tenant_rls('chat.sessions');

CREATE TABLE chat.messages (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    session_id           uuid NOT NULL REFERENCES chat.sessions (id) ON DELETE CASCADE,
    user_id              uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    reply_to             uuid REFERENCES chat.messages (id) ON DELETE SET NULL,
    role                 text NOT NULL CHECK (role IN ('user', 'assistant')),
    content              text NOT NULL,
    status               text NOT NULL
                         CHECK (status IN ('pending', 'blocked', 'answered', 'failed')),
    approval_request_id  uuid
                         REFERENCES alquimista_platform.approval_requests (id) ON DELETE SET NULL,
    model                text,
    prompt_tokens        integer NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens    integer NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    error_code           text,
    metadata             jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- the clock, not the transaction's start: a question and its answer stored together keep
    -- their order in the history
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_session_idx ON chat.messages (tenant_id, session_id, created_at);
CREATE INDEX messages_approval_idx ON chat.messages (approval_request_id)
    WHERE approval_request_id IS NOT NULL;
SELECT public.attach_updated_at('chat.messages');
SELECT public.enable_tenant_rls('chat.messages');

-- What an answer cited. The chunk may be deleted later; the citation keeps its rank and score.
CREATE TABLE chat.message_references (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    message_id   uuid NOT NULL REFERENCES chat.messages (id) ON DELETE CASCADE,
    chunk_id     uuid REFERENCES knowledge.chunks (id) ON DELETE SET NULL,
    document_id  uuid REFERENCES knowledge.documents (id) ON DELETE SET NULL,
    rank         integer NOT NULL CHECK (rank >= 1),
    score        double precision NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, message_id, rank)
);
CREATE INDEX message_references_chunk_idx ON chat.message_references (chunk_id);
SELECT public.attach_updated_at('chat.message_references');
SELECT public.enable_tenant_rls('chat.message_references');

CREATE TABLE chat.message_feedback (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    message_id  uuid NOT NULL REFERENCES chat.messages (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES alquimista_platform.users (id) ON DELETE CASCADE,
    rating      smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment     text CHECK (length(comment) <= 2000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, message_id, user_id)
);
SELECT public.attach_updated_at('chat.message_feedback');
SELECT public.enable_tenant_rls('chat.message_feedback');

-- Token quotas: an operator's override of the plan's monthly quota.
CREATE TABLE chat.token_quotas (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    monthly_limit  bigint NOT NULL CHECK (monthly_limit >= 0),
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id)
);
SELECT public.attach_updated_at('chat.token_quotas');
SELECT public.enable_tenant_rls('chat.token_quotas');

-- One counter per tenant and month: used + reserved never exceeds token_limit, because a
-- reservation is a single conditional UPDATE.
CREATE TABLE chat.token_usage (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    period_start  date NOT NULL,
    token_limit   bigint NOT NULL CHECK (token_limit >= 0),
    used          bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
    reserved      bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, period_start)
);
SELECT public.attach_updated_at('chat.token_usage');
SELECT public.enable_tenant_rls('chat.token_usage');

CREATE TABLE chat.token_reservations (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    usage_id       uuid NOT NULL REFERENCES chat.token_usage (id) ON DELETE CASCADE,
    user_id        uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    tokens         bigint NOT NULL CHECK (tokens > 0),
    status         text NOT NULL DEFAULT 'reserved'
                   CHECK (status IN ('reserved', 'settled', 'released', 'expired')),
    actual_tokens  bigint CHECK (actual_tokens >= 0),
    expires_at     timestamptz NOT NULL,
    settled_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX token_reservations_open_idx ON chat.token_reservations (tenant_id, expires_at)
    WHERE status = 'reserved';
CREATE INDEX token_reservations_usage_idx ON chat.token_reservations (usage_id);
SELECT public.attach_updated_at('chat.token_reservations');
SELECT public.enable_tenant_rls('chat.token_reservations');

-- One row per provider call, for the usage report (per day, user, model) and cost.
CREATE TABLE chat.token_usage_log (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    user_id            uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    reservation_id     uuid REFERENCES chat.token_reservations (id) ON DELETE SET NULL,
    message_id         uuid REFERENCES chat.messages (id) ON DELETE SET NULL,
    model              text NOT NULL,
    prompt_tokens      integer NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens  integer NOT NULL CHECK (completion_tokens >= 0),
    cost_estimate      numeric(14, 6) NOT NULL DEFAULT 0 CHECK (cost_estimate >= 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX token_usage_log_tenant_idx ON chat.token_usage_log (tenant_id, created_at DESC);
SELECT public.attach_updated_at('chat.token_usage_log');
SELECT public.enable_tenant_rls('chat.token_usage_log');

-- A tenant's monthly token limit: the operator's override, else the quota of the plan of its
-- live subscription; NULL when neither sets one (the caller applies its default).
CREATE FUNCTION chat.monthly_token_limit(tenant uuid) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT q.monthly_limit FROM chat.token_quotas AS q WHERE q.tenant_id = tenant),
        (SELECT p.monthly_token_quota
         FROM public.subscriptions AS s
         JOIN public.subscription_plans AS p ON p.id = s.plan_id
         WHERE s.tenant_id = tenant AND s.status IN ('active', 'past_due', 'trialing')
         ORDER BY s.created_at DESC LIMIT 1)
    )
$$;

-- Release reservations whose call never settled (a crashed or timed-out Lambda); returns how
-- many. Like public.expire_trials it scopes itself to each tenant in turn.
CREATE FUNCTION chat.release_stale_token_reservations() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    caller_tenant text := current_setting('app.current_tenant_id', true);
    tenant        uuid;
    batch         integer;
    total         integer := 0;
BEGIN
    FOR tenant IN SELECT id FROM alquimista_platform.tenants ORDER BY id LOOP
        PERFORM set_config('app.current_tenant_id', tenant::text, true);
        WITH stale AS (
            UPDATE chat.token_reservations
            SET status = 'expired', settled_at = now()
            WHERE tenant_id = tenant AND status = 'reserved' AND expires_at <= now()
            RETURNING usage_id, tokens
        ), per_usage AS (
            SELECT usage_id, sum(tokens) AS tokens, count(*) AS released
            FROM stale GROUP BY usage_id
        ), freed AS (
            UPDATE chat.token_usage AS u
            SET reserved = u.reserved - p.tokens
            FROM per_usage AS p
            WHERE u.id = p.usage_id
            RETURNING p.released
        )
        SELECT coalesce(sum(released), 0)::integer INTO batch FROM freed;
        total := total + batch;
    END LOOP;
    PERFORM set_config('app.current_tenant_id', coalesce(caller_tenant, ''), true);
    RETURN total;
END
$$;
