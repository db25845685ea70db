-- Callbacks that cannot move any generation are settled in the statement that stores them,
-- so they cost one write instead of a write, a row lock and a rewrite by the applier:
--   * no task id at all                                  -> outcome 'no_task_id', applied now;
--   * not trusted, and no generation owns its task id    -> outcome 'orphan' (waits for the id).
-- Everything else (a known task, or a trusted callback that may adopt its generation) is left
-- with no outcome for the applier.
--
-- The shared lock per task id (task_keys: those of the rows that may be settled as orphans) comes
-- first. Recording a task id (attach_task_id, or the applier adopting a generation) holds the same
-- lock exclusively until it has applied that task's orphans and committed, so either that scan
-- sees this callback or this INSERT, which runs after the lock with a fresh snapshot (a VOLATILE
-- function takes one per statement), sees the task id. Either way no orphan is missed.
CREATE FUNCTION store_callback_batch(batch text, task_keys bigint[], trusted text[])
RETURNS TABLE (event_id bigint, event_intake_id text, settled_outcome text)
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(k) FROM (SELECT unnest(task_keys) AS k ORDER BY 1) AS keys;
    RETURN QUERY
    INSERT INTO callback_events AS e (
        intake_id, received_at, path, content_type, query, headers, body, body_size, body_truncated,
        task_id, strategy, verification, verification_detail, gid, parsed, spooled, outcome, applied_at)
    SELECT t.intake_id, t.received_at, t.path, t.content_type, t.query, t.headers, t.body, t.body_size,
           t.body_truncated, t.task_id, t.strategy, t.verification, t.verification_detail, t.gid, t.parsed,
           t.spooled,
           CASE
               WHEN t.task_id IS NULL THEN 'no_task_id'
               WHEN t.verification <> ALL (trusted)
                    AND NOT EXISTS (SELECT 1 FROM generations AS g WHERE g.task_id = t.task_id)
               THEN 'orphan'
           END,
           CASE WHEN t.task_id IS NULL THEN now() END
    FROM json_to_recordset(batch::json) AS t(
        intake_id text, received_at timestamptz, path text, content_type text, query jsonb, headers jsonb,
        body text, body_size int, body_truncated bool, task_id text, strategy text, verification text,
        verification_detail text, gid text, parsed jsonb, spooled bool)
    ON CONFLICT (intake_id) DO NOTHING
    RETURNING e.id, e.intake_id, e.outcome;
END
$$;
