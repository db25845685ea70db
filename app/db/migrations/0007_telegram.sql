-- Telegram: the update inbox (stored before it is acknowledged), conversation state, the polling
-- offset, and the delivery outbox (one row per generation and chat).

CREATE TABLE telegram_updates (
    update_id    bigint PRIMARY KEY,
    chat_id      bigint,                 -- NULL for updates that belong to no chat
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    claim        text,
    lease_until  timestamptz,
    last_error   text,
    finished_at  timestamptz
);
-- Workers take the oldest pending update of each chat.
CREATE INDEX telegram_updates_pending ON telegram_updates (chat_id, update_id) WHERE state = 'pending';
CREATE INDEX telegram_updates_finished ON telegram_updates (finished_at) WHERE state <> 'pending';

-- aiogram's FSM storage: one row per storage key (bot, chat, user, thread, destiny).
CREATE TABLE telegram_conversations (
    key         text PRIMARY KEY,
    state       text,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Where getUpdates resumes: advanced only after the updates before it are stored.
CREATE TABLE telegram_poll_offset (
    bot_id      bigint PRIMARY KEY,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The outbox of results: written with the generation (same transaction), delivered by the leader
-- once the generation has ended.
--   waiting: not due yet, or to be retried at next_at; sending: claimed (a row left here by a dead
--   sender is claimed again, with outcome 'unknown': that attempt may have arrived);
--   delivered (message_ids, outcome: edited, group, sent, notified); failed (given up).
CREATE TABLE telegram_deliveries (
    generation_id     uuid NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    chat_id           bigint NOT NULL,
    status_message_id bigint,
    state             text NOT NULL DEFAULT 'waiting'
                      CHECK (state IN ('waiting', 'sending', 'delivered', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    next_at           timestamptz NOT NULL DEFAULT now(),
    claim             text,
    lease_until       timestamptz,
    status_text       text,
    status_edited_at  timestamptz,
    message_ids       jsonb NOT NULL DEFAULT '[]'::jsonb,
    outcome           text,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    delivered_at      timestamptz,
    PRIMARY KEY (generation_id, chat_id)
);
CREATE INDEX telegram_deliveries_open ON telegram_deliveries (next_at) WHERE state IN ('waiting', 'sending');
