-- A conversation's lock and its state in one round trip. One plain statement would read with the
-- snapshot taken before the lock was granted, and could miss what the previous holder committed
-- just before releasing it (aiogram issue 1317: state must be read after the lock is held); a
-- VOLATILE function takes a fresh snapshot for each statement in it, so the read below sees
-- everything committed before the lock became ours.
CREATE FUNCTION telegram_lock_conversation(
    lock_key bigint, conversation text, OUT locked boolean, OUT state text, OUT data jsonb
)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    locked := pg_try_advisory_lock(lock_key);
    IF locked THEN
        SELECT c.state, c.data INTO state, data FROM telegram_conversations AS c WHERE c.key = conversation;
    END IF;
END
$$;
