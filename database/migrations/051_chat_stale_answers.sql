-- A question stays 'answering' (047) from its token reservation to its answer. An execution
-- environment that dies in between (a timeout, a crash) leaves it there, and a question that is
-- 'answering' can be neither resumed nor answered again. The chat sweeper (the jobs Lambda's
-- release_chat_reservations) now hands such questions back in the same pass over the tenants
-- that frees expired reservations (030's chat.release_stale_token_reservations, which keeps its
-- name and now calls this), once they are older than the reservations' lifetime, which outlives
-- any invocation: an approved one to 'pending' (its approval still holds, so it can be resumed),
-- any other to 'failed' with the code 'answer_interrupted'. Each tenant under its own scope, as
-- RLS needs. A NULL p_answer_age releases reservations only.
CREATE INDEX messages_answering_idx ON chat.messages (tenant_id, updated_at)
    WHERE status = 'answering';

CREATE FUNCTION chat.release_stale_v1(p_answer_age interval)
RETURNS TABLE (reservations integer, answers integer)
LANGUAGE plpgsql AS $$
DECLARE
    caller_tenant text := current_setting('app.current_tenant_id', true);
    tenant        uuid;
    batch         integer;
BEGIN
    IF p_answer_age <= interval '0' THEN
        RAISE EXCEPTION 'the age of a stale answer must be positive'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    reservations := 0;
    answers := 0;
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
        reservations := reservations + batch;
        IF p_answer_age IS NOT NULL THEN
            UPDATE chat.messages
            SET status = CASE WHEN approval_request_id IS NULL THEN 'failed' ELSE 'pending' END,
                error_code = CASE WHEN approval_request_id IS NULL THEN 'answer_interrupted' END
            WHERE tenant_id = tenant AND status = 'answering' AND role = 'user'
              AND updated_at <= now() - p_answer_age;
            GET DIAGNOSTICS batch = ROW_COUNT;
            answers := answers + batch;
        END IF;
    END LOOP;
    PERFORM set_config('app.current_tenant_id', coalesce(caller_tenant, ''), true);
    RETURN NEXT;
END
$$;

-- One home for the reservations' release: 030's function keeps its name for its callers.
CREATE OR REPLACE FUNCTION chat.release_stale_token_reservations() RETURNS integer
LANGUAGE sql AS $$
    SELECT reservations FROM chat.release_stale_v1(NULL)
$$;
