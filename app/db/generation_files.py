"""SQL of the ``generations`` table's files: which succeeded generations wait for their results to
be copied into our storage (the mirror queue), and what a copy recorded.

A copy is claimed with a token and a lease: the service's mirror worker and ``python -m app
mirror`` take different generations (``FOR UPDATE SKIP LOCKED``), a dead copier's lease runs out,
and every write checks the token, so a copier that lost its claim writes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.db.connection import Conn, Executor
from app.db.generations import EVENTS_CHANNEL, notify_event
from app.db.jsonb import to_jsonb
from app.states import State, sql_list

_SUCCEEDED = sql_list((State.SUCCEEDED,))

_CLAIM = f"""
UPDATE generations SET mirror_claim = $1, mirror_lease_until = now() + make_interval(secs => $2),
    mirror_attempts = mirror_attempts + 1
WHERE id IN (
    SELECT id FROM generations
    WHERE state = {_SUCCEEDED} AND mirror_state = 'pending'
      AND ($4 OR mirror_next_at IS NULL OR mirror_next_at <= now())
      AND (mirror_lease_until IS NULL OR mirror_lease_until < now()
           -- A new leader takes over what an older leader's term was copying: it may be dead.
           OR ($6::text IS NOT NULL AND mirror_claim LIKE 'leader:%' AND NOT starts_with(mirror_claim, $6)))
      AND id <> ALL($5::uuid[])
    ORDER BY mirror_next_at NULLS FIRST, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING id, family, result_urls, mirror_attempts
"""  # noqa: S608

# One statement records the files and notifies (as notify_event words it): one round trip.
_DONE = """
WITH done AS (
    UPDATE generations SET files = $3::jsonb, mirror_state = 'done', mirror_last_error = NULL,
        mirror_next_at = NULL, mirror_claim = NULL, mirror_lease_until = NULL,
        updated_at = generation_stamp(updated_at)
    WHERE id = $1 AND mirror_claim = $2
    RETURNING id, state, stage
)
SELECT pg_notify(
    $4, jsonb_build_object('id', id::text, 'state', state, 'previous', state, 'stage', stage)::text
)
FROM done
"""

_RETRY = """
UPDATE generations SET mirror_last_error = $3, mirror_next_at = now() + make_interval(secs => $4),
    mirror_claim = NULL, mirror_lease_until = NULL, updated_at = generation_stamp(updated_at)
WHERE id = $1 AND mirror_claim = $2
"""

_GIVE_UP = """
UPDATE generations SET mirror_state = $3, mirror_last_error = $4, mirror_next_at = NULL,
    mirror_claim = NULL, mirror_lease_until = NULL, updated_at = generation_stamp(updated_at)
WHERE id = $1 AND mirror_claim = $2
RETURNING state, stage
"""

_RELEASE = """
UPDATE generations SET mirror_claim = NULL, mirror_lease_until = NULL
WHERE id = ANY($1::uuid[]) AND mirror_claim = $2
"""

_COUNTS = f"""
SELECT mirror_state, count(*) AS n FROM generations
WHERE state = {_SUCCEEDED} AND mirror_state IN ('pending', 'failed')
GROUP BY mirror_state
"""  # noqa: S608

_NEXT_DUE = f"""
SELECT min(greatest(mirror_next_at, mirror_lease_until)) FROM generations
WHERE state = {_SUCCEEDED} AND mirror_state = 'pending'
"""  # noqa: S608


@dataclass(frozen=True, slots=True)
class MirrorJob:
    """A generation claimed for copying: where its results are and how often it was tried."""

    generation_id: uuid.UUID
    family: str
    result_urls: list[str]
    attempts: int


async def claim(
    conn: Executor,
    token: str,
    *,
    limit: int,
    lease_s: float,
    ignore_backoff: bool = False,
    exclude: list[uuid.UUID] | None = None,
    leader_prefix: str | None = None,
) -> list[MirrorJob]:
    """Claim up to ``limit`` generations whose copy is due.

    ``ignore_backoff`` takes every pending one (``mirror --once``), ``exclude`` skips those this
    copier already tried in its run; ``leader_prefix`` (the current term's token prefix) lets the
    leader take over claims of an older term.
    """
    rows = await conn.fetch(_CLAIM, token, lease_s, limit, ignore_backoff, exclude or [], leader_prefix)
    return [
        MirrorJob(row["id"], row["family"], list(row["result_urls"] or []), int(row["mirror_attempts"]))
        for row in rows
    ]


async def record_files(conn: Conn, generation_id: uuid.UUID, token: str, files: list[dict[str, Any]]) -> bool:
    """The copy is complete: record the files (in result order) and tell every listener."""
    row = await conn.fetchrow(_DONE, generation_id, token, to_jsonb(files), EVENTS_CHANNEL)
    return row is not None


async def retry_later(conn: Executor, generation_id: uuid.UUID, token: str, error: str, in_s: float) -> bool:
    """The copy failed for now: keep it pending, with the error, due again in ``in_s`` seconds."""
    return str(await conn.execute(_RETRY, generation_id, token, error, in_s)).endswith(" 1")


async def give_up(conn: Conn, generation_id: uuid.UUID, token: str, state: str, error: str | None) -> bool:
    """End the copy as ``failed`` (with the error) or ``disabled``; the generation stays as it is."""
    row = await conn.fetchrow(_GIVE_UP, generation_id, token, state, error)
    if row is None:
        return False
    await notify_event(conn, generation_id, row["state"], previous=row["state"], stage=row["stage"])
    return True


async def release(conn: Executor, generation_ids: list[uuid.UUID], token: str) -> None:
    """Give claims back untouched (a copier stopping before it finished)."""
    await conn.execute(_RELEASE, generation_ids, token)


async def counts(conn: Executor) -> dict[str, int]:
    """How many succeeded generations are still ``pending`` or ``failed``."""
    return {row["mirror_state"]: int(row["n"]) for row in await conn.fetch(_COUNTS)}


async def next_due(conn: Executor) -> datetime | None:
    """When the earliest pending copy is due."""
    value: datetime | None = await conn.fetchval(_NEXT_DUE)
    return value
