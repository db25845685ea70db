"""SQL of the ``telegram_updates`` inbox: every update Telegram gave us, stored before it is
acknowledged (webhook) or before the polling offset moves past it, then handled once.

Workers on every instance claim the oldest pending update of each chat (``FOR UPDATE SKIP
LOCKED``, with a lease), so a chat's updates are handled one at a time and in ``update_id`` order
while different chats proceed in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.db.connection import Executor
from app.db.jsonb import to_jsonb

# No NOTIFY here: a transaction that NOTIFYs takes a commit-order lock, which would serialise every
# webhook request on it. The instance that stored the updates wakes its own workers in process;
# the others find them on their next short tick.
_INSERT = """
INSERT INTO telegram_updates (update_id, chat_id, payload)
SELECT u.update_id, u.chat_id, u.payload
FROM unnest($1::bigint[], $2::bigint[], $3::jsonb[]) AS u (update_id, chat_id, payload)
ON CONFLICT (update_id) DO NOTHING
RETURNING update_id
"""

# A chat's oldest pending update is its head; only a head that is due and not leased may be claimed,
# so a chat's updates go one at a time and in order. The heads are found by walking the pending
# index one chat at a time (a loose index scan), in chat order from a cursor the caller keeps, and
# the walk stops as soon as enough are claimed: a claim costs about as much as the updates it
# returns, however deep the backlog (a NOT EXISTS over every pending row cost ~2.4 us per row, 85
# ms a claim with 35,000 updates waiting, and starved the database of CPU while the webhook stored
# more). $4 < chat_id <= $5 is the stretch of chats to walk; $6 also takes updates of no chat.
# The same statement marks the caller's handled updates ($7) done, so a worker commits (and waits
# for the WAL) once per batch rather than twice per update; the walk skips them, since in the
# statement's snapshot they are still pending, and finds their chats' next updates instead. Only
# those it did mark are skipped: an update whose lease ran out and that another worker claimed
# again is still its chat's head, and the chat's next update must wait for it.
_CLAIM = """
WITH RECURSIVE finished AS (
    UPDATE telegram_updates SET state = 'done', claim = NULL, lease_until = NULL, finished_at = now()
    WHERE update_id = ANY($7::bigint[]) AND claim = $1
    RETURNING update_id
),
heads AS (
    (SELECT chat_id, update_id FROM telegram_updates
     WHERE state = 'pending' AND chat_id > $4 AND chat_id <= $5
       AND update_id NOT IN (SELECT update_id FROM finished)
     ORDER BY chat_id, update_id LIMIT 1)
    UNION ALL
    SELECT nxt.chat_id, nxt.update_id FROM heads AS h
    CROSS JOIN LATERAL (
        SELECT e.chat_id, e.update_id FROM telegram_updates AS e
        WHERE e.state = 'pending' AND e.chat_id > h.chat_id AND e.chat_id <= $5
          AND e.update_id NOT IN (SELECT update_id FROM finished)
        ORDER BY e.chat_id, e.update_id LIMIT 1
    ) AS nxt
),
chatless AS (
    SELECT update_id FROM telegram_updates
    WHERE $6 AND state = 'pending' AND chat_id IS NULL AND next_at <= now()
      AND (lease_until IS NULL OR lease_until < now())
      AND update_id NOT IN (SELECT update_id FROM finished)
    ORDER BY update_id LIMIT $3
    FOR UPDATE SKIP LOCKED
),
chat_heads AS (
    -- A LATERAL with its own LIMIT cannot be flattened into a hash join (which would walk every
    -- chat first): it stays a nested loop over the walk, and the LIMIT below stops the walk early.
    SELECT u.update_id FROM heads AS h
    CROSS JOIN LATERAL (
        SELECT update_id FROM telegram_updates AS u
        WHERE u.update_id = h.update_id AND u.state = 'pending' AND u.next_at <= now()
          AND (u.lease_until IS NULL OR u.lease_until < now())
        LIMIT 1
    ) AS u
    LIMIT greatest(0, $3 - (SELECT count(*) FROM chatless))
    FOR UPDATE OF u SKIP LOCKED
)
UPDATE telegram_updates AS t SET claim = $1, lease_until = now() + make_interval(secs => $2),
    attempts = t.attempts + 1
WHERE t.update_id IN (SELECT update_id FROM chat_heads UNION ALL SELECT update_id FROM chatless)
RETURNING t.update_id, t.chat_id, t.payload, t.attempts
"""

_FIRST_CHAT = -(2**63)  # below every chat id (bigint's minimum, which no chat has)
_LAST_CHAT = 2**63 - 1

_DONE = """
UPDATE telegram_updates SET state = 'done', claim = NULL, lease_until = NULL, finished_at = now()
WHERE update_id = ANY($1::bigint[]) AND claim = $2
"""

_RETRY = """
UPDATE telegram_updates SET claim = NULL, lease_until = NULL, last_error = $3,
    next_at = now() + make_interval(secs => $4)
WHERE update_id = $1 AND claim = $2
"""

_FAILED = """
UPDATE telegram_updates SET state = 'failed', claim = NULL, lease_until = NULL, last_error = $3,
    finished_at = now()
WHERE update_id = $1 AND claim = $2
"""

_PRUNE = """
DELETE FROM telegram_updates
WHERE update_id IN (
    SELECT update_id FROM telegram_updates
    WHERE state <> 'pending' AND finished_at < now() - make_interval(secs => $1)
    LIMIT $2
)
"""

_DEPTH = """
SELECT count(*) AS depth, extract(epoch FROM now() - min(received_at)) AS oldest_s
FROM telegram_updates WHERE state = 'pending'
"""

_NEXT_DUE = """
SELECT min(greatest(next_at, lease_until)) FROM telegram_updates WHERE state = 'pending'
"""


@dataclass(frozen=True, slots=True)
class StoredUpdate:
    """A claimed update: its raw JSON and how many times it was tried (this one included)."""

    update_id: int
    chat_id: int | None
    payload: dict[str, Any]
    attempts: int


async def store(conn: Executor, updates: list[tuple[int, int | None, dict[str, Any] | str]]) -> list[int]:
    """Store ``(update_id, chat_id, payload)`` rows, a payload being the update or JSON text fit for
    jsonb; the ids that were new (duplicates are skipped)."""
    if not updates:
        return []
    rows = await conn.fetch(
        _INSERT,
        [update_id for update_id, _, _ in updates],
        [chat_id for _, chat_id, _ in updates],
        [payload if isinstance(payload, str) else to_jsonb(payload) for _, _, payload in updates],
    )
    return [int(row["update_id"]) for row in rows]


async def claim(
    conn: Executor,
    token: str,
    *,
    lease_s: float,
    limit: int,
    after_chat: int | None = None,
    done: list[int] | None = None,
) -> list[StoredUpdate]:
    """Mark ``done`` (updates this ``token`` handled) done, then claim up to ``limit`` updates, each
    its chat's oldest pending one, oldest first.

    Chats are taken in id order after ``after_chat`` and then from the start again, so a caller
    that passes the last chat it got (:func:`next_cursor`) serves every chat in turn and none
    starves. Updates of no chat are taken along, oldest first.
    """
    start = _FIRST_CHAT if after_chat is None else after_chat
    rows = list(await conn.fetch(_CLAIM, token, lease_s, limit, start, _LAST_CHAT, True, done or []))
    if len(rows) < limit and after_chat is not None:  # go round to the first chats again
        more = limit - len(rows)
        rows += await conn.fetch(_CLAIM, token, lease_s, more, _FIRST_CHAT, after_chat, False, [])
    return [
        StoredUpdate(int(r["update_id"]), r["chat_id"], dict(r["payload"]), int(r["attempts"]))
        for r in sorted(rows, key=lambda r: int(r["update_id"]))
    ]


def next_cursor(claimed: list[StoredUpdate], after_chat: int | None) -> int | None:
    """Where the next :func:`claim` should go on: the last chat this one reached (None: the start)."""
    chats = [u.chat_id for u in claimed if u.chat_id is not None]
    if after_chat is not None and any(chat <= after_chat for chat in chats):
        chats = [chat for chat in chats if chat <= after_chat]  # it wrapped round: the second part
    return max(chats, default=None)


async def mark_done(conn: Executor, update_ids: list[int], token: str) -> None:
    """These updates were handled (by the worker holding ``token``)."""
    await conn.execute(_DONE, update_ids, token)


async def retry_later(conn: Executor, update_id: int, token: str, error: str, in_s: float) -> None:
    """Handling failed for now: try again in ``in_s`` seconds (the chat waits meanwhile)."""
    await conn.execute(_RETRY, update_id, token, error[:1000], in_s)


async def mark_failed(conn: Executor, update_id: int, token: str, error: str) -> None:
    """Handling failed for good: the chat's next updates go on."""
    await conn.execute(_FAILED, update_id, token, error[:1000])


async def prune(conn: Executor, older_than_s: float, limit: int = 1000) -> int:
    """Delete handled updates older than ``older_than_s`` (kept until then to drop duplicates)."""
    status = await conn.execute(_PRUNE, older_than_s, limit)
    return int(status.split()[-1])


async def depth(conn: Executor) -> tuple[int, float]:
    """Pending updates and the age of the oldest, in seconds."""
    row = await conn.fetchrow(_DEPTH)
    assert row is not None
    return int(row["depth"]), float(row["oldest_s"] or 0.0)


async def next_due(conn: Executor) -> Any:
    """When the next pending update may be claimed (None: nothing pending)."""
    return await conn.fetchval(_NEXT_DUE)
