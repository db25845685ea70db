-- Outbound webhooks: a generation may carry a webhook_url; every terminal state and the moment its
-- files are ready write one event to an outbox, in the same transaction as the change itself (a
-- trigger), so no event is lost whatever the process does next. The leader delivers them.

ALTER TABLE generations ADD COLUMN webhook_url text;

-- One signing secret per API key (its owner hash), when WEBHOOK_SECRET does not set one for all.
CREATE TABLE webhook_secrets (
    owner      text PRIMARY KEY,
    secret     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_events (
    id              text PRIMARY KEY,            -- webhook-id: the same on every attempt
    generation_id   uuid NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    owner           text NOT NULL,
    url             text NOT NULL,
    event_type      text NOT NULL,
    payload         text,                        -- the body, fixed at the first attempt
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claim           text,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (generation_id, event_type)
);
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE state = 'pending';

CREATE TABLE webhook_attempts (
    id          bigserial PRIMARY KEY,
    event_id    text NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    status_code integer,
    latency_ms  double precision,
    error       text
);
CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, at);

CREATE FUNCTION webhook_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kind text;
BEGIN
    IF NEW.webhook_url IS NULL THEN
        RETURN NEW;
    END IF;
    IF NEW.state IS DISTINCT FROM OLD.state
       AND NEW.state IN ('succeeded', 'failed', 'timed_out', 'canceled') THEN
        kind := 'generation.' || NEW.state;
    ELSIF NEW.mirror_state = 'done' AND OLD.mirror_state IS DISTINCT FROM 'done'
          AND jsonb_array_length(NEW.files) > 0 THEN
        kind := 'generation.files_ready';
    ELSE
        RETURN NEW;
    END IF;
    INSERT INTO webhook_events (id, generation_id, owner, url, event_type)
    VALUES ('msg_' || replace(gen_random_uuid()::text, '-', ''), NEW.id, NEW.owner, NEW.webhook_url, kind)
    ON CONFLICT (generation_id, event_type) DO NOTHING;
    PERFORM pg_notify('webhook_events', '');
    RETURN NEW;
END;
$$;

CREATE TRIGGER generations_webhook_outbox
    AFTER UPDATE OF state, mirror_state ON generations
    FOR EACH ROW EXECUTE FUNCTION webhook_outbox();
