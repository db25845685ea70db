"""SQL of the ``telegram_deliveries`` outbox: which chat gets which generation's result.

A row is written in the same transaction as the generation it belongs to, so no result can be
forgotten; the leader claims rows whose generation has ended (with a lease), sends, and records
the message ids. A row left ``sending`` by a dead leader is claimed again once its lease ends (or
at once by a new leader): that attempt may already have reached Telegram, which is why delivery
prefers editing the status message, an operation that cannot make a second copy.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from app.db.connection import Executor
from app.db.jsonb import to_jsonb
from app.states import TERMINAL, State, sql_list

_TERMINAL = sql_list(TERMINAL)
_SUCCEEDED = sql_list((State.SUCCEEDED,))

_INSERT = """
INSERT INTO telegram_deliveries (generation_id, chat_id, lang) VALUES ($1, $2, $3)
ON CONFLICT (generation_id, chat_id) DO NOTHING
"""

_SET_STATUS_MESSAGE = """
UPDATE telegram_deliveries SET status_message_id = $3, status_text = $4, status_edited_at = now()
WHERE generation_id = $1 AND chat_id = $2 AND status_message_id IS NULL
"""

_GET = "SELECT * FROM telegram_deliveries WHERE generation_id = $1 AND chat_id = $2"
_OPEN_FOR = "SELECT * FROM telegram_deliveries WHERE generation_id = $1 AND state = 'waiting'"

_STATUS_EDITED = """
UPDATE telegram_deliveries SET status_text = $3, status_edited_at = now()
WHERE generation_id = $1 AND chat_id = $2 AND state = 'waiting'
"""

# A success waits (a bounded while) for its copies, so Telegram gets our files rather than
# KIE's short-lived links.
_CLAIM = f"""
UPDATE telegram_deliveries AS d SET state = 'sending', claim = $1,
    lease_until = now() + make_interval(secs => $2), attempts = d.attempts + 1,
    -- Still "sending": the last sender died mid-send, so what it sent is unknown.
    outcome = CASE WHEN d.state = 'sending' THEN 'unknown' ELSE NULL END
WHERE (d.generation_id, d.chat_id) IN (
    SELECT t.generation_id, t.chat_id FROM telegram_deliveries AS t
    JOIN generations AS g ON g.id = t.generation_id
    WHERE t.next_at <= now()
      AND g.state IN ({_TERMINAL})
      AND (g.state <> {_SUCCEEDED} OR g.mirror_state <> 'pending'
           OR g.finished_at < now() - make_interval(secs => $4))
      AND (t.state = 'waiting'
           OR (t.state = 'sending' AND (t.lease_until < now()
               OR ($5::text IS NOT NULL AND t.claim LIKE 'leader:%' AND NOT starts_with(t.claim, $5)))))
    ORDER BY t.next_at
    LIMIT $3
    FOR UPDATE OF t SKIP LOCKED
)
RETURNING d.*
"""  # noqa: S608

_DELIVERED = """
UPDATE telegram_deliveries SET state = 'delivered', claim = NULL, lease_until = NULL,
    message_ids = $4::jsonb, outcome = $5, delivered_at = now(), last_error = NULL
WHERE generation_id = $1 AND chat_id = $2 AND claim = $3
"""

_RETRY = """
UPDATE telegram_deliveries SET state = 'waiting', claim = NULL, lease_until = NULL, last_error = $4,
    next_at = now() + make_interval(secs => $5)
WHERE generation_id = $1 AND chat_id = $2 AND claim = $3
"""

_FAILED = """
UPDATE telegram_deliveries SET state = 'failed', claim = NULL, lease_until = NULL, last_error = $4
WHERE generation_id = $1 AND chat_id = $2 AND claim = $3
"""

_NEXT_DUE = f"""
SELECT min(greatest(t.next_at, t.lease_until)) FROM telegram_deliveries AS t
JOIN generations AS g ON g.id = t.generation_id
WHERE t.state IN ('waiting', 'sending') AND g.state IN ({_TERMINAL})
"""  # noqa: S608

_COUNTS = "SELECT state, count(*) AS n FROM telegram_deliveries GROUP BY state"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One chat's delivery of one generation."""

    generation_id: uuid.UUID
    chat_id: int
    status_message_id: int | None
    state: str
    attempts: int
    status_text: str | None
    message_ids: list[int]
    outcome: str | None = None  # after a claim: "unknown" when the previous send may have arrived
    lang: str = "en"


def _delivery(r: asyncpg.Record) -> Delivery:
    return Delivery(
        r["generation_id"],
        int(r["chat_id"]),
        r["status_message_id"],
        r["state"],
        int(r["attempts"]),
        r["status_text"],
        list(r["message_ids"] or []),
        r["outcome"],
        r["lang"],
    )


async def insert(conn: Executor, generation_id: uuid.UUID, chat_id: int, lang: str = "en") -> None:
    """This chat gets the generation's result, in ``lang`` (a second insert is a no-op)."""
    await conn.execute(_INSERT, generation_id, chat_id, lang)


async def set_status_message(
    conn: Executor, generation_id: uuid.UUID, chat_id: int, message_id: int, text: str
) -> bool:
    """Record the status message (once: False when one was recorded already)."""
    status = await conn.execute(_SET_STATUS_MESSAGE, generation_id, chat_id, message_id, text)
    return status.endswith(" 1")


async def get(conn: Executor, generation_id: uuid.UUID, chat_id: int) -> Delivery | None:
    """The delivery row, or None."""
    row = await conn.fetchrow(_GET, generation_id, chat_id)
    return _delivery(row) if row is not None else None


async def waiting_for(conn: Executor, generation_id: uuid.UUID) -> list[Delivery]:
    """The chats still waiting for this generation (their status messages follow it)."""
    return [_delivery(row) for row in await conn.fetch(_OPEN_FOR, generation_id)]


async def status_edited(conn: Executor, generation_id: uuid.UUID, chat_id: int, text: str) -> None:
    """The status message now shows ``text``."""
    await conn.execute(_STATUS_EDITED, generation_id, chat_id, text)


async def claim(
    conn: Executor,
    token: str,
    *,
    lease_s: float,
    limit: int,
    mirror_wait_s: float,
    leader_prefix: str | None,
) -> list[Delivery]:
    """Claim deliveries whose generation has ended (including ones a dead sender left)."""
    rows = await conn.fetch(_CLAIM, token, lease_s, limit, mirror_wait_s, leader_prefix)
    return [_delivery(row) for row in rows]


async def mark_delivered(
    conn: Executor, delivery: Delivery, token: str, message_ids: list[int], outcome: str
) -> None:
    """Sent: the message ids the chat got, and how (``edited``, ``sent``, ``link``...)."""
    await conn.execute(
        _DELIVERED, delivery.generation_id, delivery.chat_id, token, to_jsonb(message_ids), outcome
    )


async def retry_later(conn: Executor, delivery: Delivery, token: str, error: str, in_s: float) -> None:
    """Surely not delivered: try again in ``in_s`` seconds."""
    await conn.execute(_RETRY, delivery.generation_id, delivery.chat_id, token, error[:1000], in_s)


async def mark_failed(conn: Executor, delivery: Delivery, token: str, error: str) -> None:
    """Given up (a chat that blocked the bot, say)."""
    await conn.execute(_FAILED, delivery.generation_id, delivery.chat_id, token, error[:1000])


async def next_due(conn: Executor) -> object:
    """When the next claimable delivery is due (None: none)."""
    return await conn.fetchval(_NEXT_DUE)


async def counts(conn: Executor) -> dict[str, int]:
    """Deliveries by state."""
    return {row["state"]: int(row["n"]) for row in await conn.fetch(_COUNTS)}
