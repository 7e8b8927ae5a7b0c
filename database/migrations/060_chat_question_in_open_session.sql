-- A chat question is stored in the same round trip as its transaction's COMMIT
-- (UnitOfWork.commit_with): the session check that used to be a statement of its own (the
-- session read FOR UPDATE before the gate) moves into the insert. The insert must then fail,
-- not insert nothing, when the session is missing, not the caller's or closed: PostgreSQL
-- skips the COMMIT queued behind a failed statement, so nothing the gate wrote in that
-- transaction (its evaluation, an audit row, an approval request) is kept. The refusals name
-- a constraint, which the chat repository maps to its domain errors (404, 409).
CREATE FUNCTION chat.add_question_v1(
    p_id uuid,
    p_tenant_id uuid,
    p_session_id uuid,
    p_user_id uuid,
    p_content text,
    p_status text,
    p_approval_request_id uuid,
    p_error_code text
) RETURNS SETOF chat.messages
LANGUAGE plpgsql AS $$
DECLARE
    session_status text;
BEGIN
    -- the lock keeps the session open until the question commits (closing it waits)
    SELECT status INTO session_status FROM chat.sessions
    WHERE tenant_id = p_tenant_id AND id = p_session_id AND user_id = p_user_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'chat session not found'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'chat_question_session_exists';
    END IF;
    IF session_status <> 'open' THEN
        RAISE EXCEPTION 'the chat session is closed'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'chat_question_session_open';
    END IF;
    RETURN QUERY
    INSERT INTO chat.messages
        (id, tenant_id, session_id, user_id, role, content, status, approval_request_id,
         error_code)
    VALUES (p_id, p_tenant_id, p_session_id, p_user_id, 'user', p_content, p_status,
            p_approval_request_id, p_error_code)
    RETURNING *;
END
$$;
