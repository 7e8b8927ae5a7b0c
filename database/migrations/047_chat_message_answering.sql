-- A question being answered is 'answering', no longer 'pending' (which now only means waiting
-- for an approval). Resuming an approved question moves it from 'pending' to 'answering' under
-- its row lock, so two concurrent resumes cannot both reach the provider, both charge the quota
-- and both store an answer: the second finds it no longer pending.
ALTER TABLE chat.messages DROP CONSTRAINT messages_status_check;
ALTER TABLE chat.messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('pending', 'answering', 'blocked', 'answered', 'failed'));
