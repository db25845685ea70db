-- The callback inbox: a unique intake id per received callback (the same id in the spool
-- file and in this table, so a replay never stores a callback twice), the parsed outcome,
-- and what the generation row needs to show progress.

ALTER TABLE callback_events RENAME COLUMN spool_id TO intake_id;
ALTER TABLE callback_events ALTER COLUMN intake_id SET NOT NULL;
ALTER TABLE callback_events ADD COLUMN path text NOT NULL DEFAULT '/callbacks/kie';
ALTER TABLE callback_events ADD COLUMN verification_detail text;
ALTER TABLE callback_events ADD COLUMN gid text;
ALTER TABLE callback_events ADD COLUMN spooled boolean NOT NULL DEFAULT false;

-- Events received but not yet applied (a crash between storing and applying).
CREATE INDEX callback_events_unapplied ON callback_events (received_at)
    WHERE applied_at IS NULL AND outcome IS NULL;

ALTER TABLE generations ADD COLUMN stage text;
ALTER TABLE generations ADD COLUMN progress real;
ALTER TABLE generations ADD COLUMN result_object jsonb;
ALTER TABLE generations ADD COLUMN last_callback_at timestamptz;
