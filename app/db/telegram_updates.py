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

_CLAIM = """
UPDATE telegram_updates SET claim = $1, lease_until = now() + make_interval(secs => $2),
    attempts = attempts + 1
WHERE update_id IN (
    SELECT u.update_id FROM telegram_updates AS u
    WHERE u.state = 'pending' AND u.next_at <= now()
      AND (u.lease_until IS NULL OR u.lease_until < now())
      -- Only a chat's oldest pending update: its later ones wait until it is done or failed.
      AND NOT EXISTS (
          SELECT 1 FROM telegram_updates AS e
          WHERE e.chat_id = u.chat_id AND e.state = 'pending' AND e.update_id < u.update_id
      )
    ORDER BY u.update_id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING update_id, chat_id, payload, attempts
"""

_DONE = """
UPDATE telegram_updates SET state = 'done', claim = NULL, lease_until = NULL, finished_at = now()
WHERE update_id = $1 AND claim = $2
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


async def store(conn: Executor, updates: list[tuple[int, int | None, dict[str, Any]]]) -> list[int]:
    """Store ``(update_id, chat_id, payload)`` rows; the ids that were new (duplicates are skipped)."""
    if not updates:
        return []
    rows = await conn.fetch(
        _INSERT,
        [update_id for update_id, _, _ in updates],
        [chat_id for _, chat_id, _ in updates],
        [to_jsonb(payload) for _, _, payload in updates],
    )
    return [int(row["update_id"]) for row in rows]


async def claim(conn: Executor, token: str, *, lease_s: float, limit: int) -> list[StoredUpdate]:
    """Claim up to ``limit`` updates, at most one per chat, oldest first."""
    rows = await conn.fetch(_CLAIM, token, lease_s, limit)
    return [
        StoredUpdate(int(r["update_id"]), r["chat_id"], dict(r["payload"]), int(r["attempts"]))
        for r in sorted(rows, key=lambda r: int(r["update_id"]))
    ]


async def mark_done(conn: Executor, update_id: int, token: str) -> None:
    """The update was handled."""
    await conn.execute(_DONE, update_id, token)


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
