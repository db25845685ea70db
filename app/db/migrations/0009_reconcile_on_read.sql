-- Reconcile on read: a GET of an open generation may make it due for a status check early, at most
-- once every 10 seconds per generation; this is when it last did.
ALTER TABLE generations ADD COLUMN early_check_at timestamptz;
