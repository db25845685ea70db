-- Submission bookkeeping: a claim before KIE is asked, and the "uncertain" state of a create
-- request that may or may not have reached KIE (never retried blindly: a callback carrying our
-- generation id resolves it, the deadline fails it).

ALTER TABLE generations ADD COLUMN submitting_at timestamptz;
ALTER TABLE generations ADD COLUMN submit_after timestamptz;
ALTER TABLE generations ADD COLUMN submit_uncertain_at timestamptz;
ALTER TABLE generations ADD COLUMN status_checks integer NOT NULL DEFAULT 0;
ALTER TABLE generations ADD COLUMN submitted_at timestamptz;

DROP INDEX generations_queued;
CREATE INDEX generations_queued ON generations (created_at)
    WHERE state = 'queued' AND submitting_at IS NULL AND submit_uncertain_at IS NULL;
CREATE INDEX generations_deadline ON generations (deadline_at)
    WHERE state IN ('queued', 'submitted', 'running');
