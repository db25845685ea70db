-- Initial schema: generations, the callback inbox, leadership and settings.

CREATE TABLE generations (
    id              uuid PRIMARY KEY,
    owner           text NOT NULL,
    source          text NOT NULL CHECK (source IN ('api', 'telegram')),
    model           text NOT NULL,
    family          text NOT NULL,
    input           jsonb NOT NULL DEFAULT '{}'::jsonb,
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'submitted', 'running',
                                     'succeeded', 'failed', 'timed_out', 'canceled')),
    task_id         text UNIQUE,
    idempotency_key text,
    error           text,
    error_code      text,
    result_urls     jsonb NOT NULL DEFAULT '[]'::jsonb,
    files           jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    deadline_at     timestamptz,
    next_check_at   timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    CONSTRAINT generations_task_id_not_empty CHECK (task_id IS NULL OR task_id <> ''),
    CONSTRAINT generations_finished_when_terminal
        CHECK ((finished_at IS NOT NULL) = (state IN ('succeeded', 'failed', 'timed_out', 'canceled')))
);

CREATE UNIQUE INDEX generations_owner_idempotency
    ON generations (owner, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX generations_queued ON generations (created_at) WHERE state = 'queued';
CREATE INDEX generations_due ON generations (next_check_at)
    WHERE state IN ('submitted', 'running') AND next_check_at IS NOT NULL;
CREATE INDEX generations_owner_created ON generations (owner, created_at DESC);

CREATE TABLE callback_events (
    id              bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    spool_id        text UNIQUE,
    content_type    text,
    query           jsonb NOT NULL DEFAULT '{}'::jsonb,
    headers         jsonb NOT NULL DEFAULT '{}'::jsonb,
    body            text NOT NULL DEFAULT '',
    body_size       integer NOT NULL DEFAULT 0,
    body_truncated  boolean NOT NULL DEFAULT false,
    task_id         text,
    strategy        text,
    verification    text NOT NULL DEFAULT 'none'
                    CHECK (verification IN ('url_token', 'kie_signature', 'none', 'invalid')),
    parsed          jsonb,
    generation_id   uuid REFERENCES generations (id) ON DELETE SET NULL,
    outcome         text,
    applied_at      timestamptz
);

CREATE INDEX callback_events_task ON callback_events (task_id);
CREATE INDEX callback_events_orphans ON callback_events (task_id)
    WHERE generation_id IS NULL AND applied_at IS NULL AND task_id IS NOT NULL;

CREATE TABLE leadership (
    name        text PRIMARY KEY,
    epoch       bigint NOT NULL DEFAULT 0,
    holder      text,
    acquired_at timestamptz
);

CREATE TABLE settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
