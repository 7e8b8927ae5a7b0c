-- A question stays 'answering' (047) from its token reservation to its answer. An execution
-- environment that dies in between (a timeout, a crash) leaves it there, and a question that is
-- 'answering' can be neither resumed nor answered again. The chat sweeper (the jobs Lambda's
-- release_chat_reservations, beside chat.release_stale_token_reservations) hands such questions
-- back once they are older than the reservations' lifetime, which outlives any invocation: an
-- approved one to 'pending' (its approval still holds, so it can be resumed), any other to
-- 'failed' with the code 'answer_interrupted'. Each tenant under its own scope, as RLS needs.
CREATE INDEX messages_answering_idx ON chat.messages (tenant_id, updated_at)
    WHERE status = 'answering';

CREATE FUNCTION chat.release_stale_answers_v1(p_older_than interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    caller_tenant text := current_setting('app.current_tenant_id', true);
    tenant        uuid;
    batch         integer;
    total         integer := 0;
BEGIN
    IF p_older_than IS NULL OR p_older_than <= interval '0' THEN
        RAISE EXCEPTION 'the age of a stale answer must be positive'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR tenant IN SELECT id FROM alquimista_platform.tenants ORDER BY id LOOP
        PERFORM set_config('app.current_tenant_id', tenant::text, true);
        UPDATE chat.messages
        SET status = CASE WHEN approval_request_id IS NULL THEN 'failed' ELSE 'pending' END,
            error_code = CASE WHEN approval_request_id IS NULL THEN 'answer_interrupted' END
        WHERE tenant_id = tenant AND status = 'answering' AND role = 'user'
          AND updated_at <= now() - p_older_than;
        GET DIAGNOSTICS batch = ROW_COUNT;
        total := total + batch;
    END LOOP;
    PERFORM set_config('app.current_tenant_id', coalesce(caller_tenant, ''), true);
    RETURN total;
END
$$;
