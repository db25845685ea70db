"""SQL that counts generations: per-user limits (in flight, today) and the admins' figures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.db.connection import Executor
from app.states import OPEN, sql_list

_OPEN = sql_list(OPEN)

_OPEN_COUNT = f"SELECT count(*) FROM generations WHERE owner = $1 AND state IN ({_OPEN})"  # noqa: S608
_SINCE_COUNT = "SELECT count(*) FROM generations WHERE owner = $1 AND created_at >= $2"
_BY_STATE_SINCE = "SELECT state, count(*) AS n FROM generations WHERE created_at >= $1 GROUP BY state"
_BY_MODEL_SINCE = """
SELECT model, count(*) AS n FROM generations WHERE created_at >= $1 GROUP BY model ORDER BY n DESC LIMIT $2
"""
_OWNERS_SINCE = "SELECT count(DISTINCT owner) FROM generations WHERE created_at >= $1 AND owner LIKE $2"


async def open_count(conn: Executor, owner: str) -> int:
    """Generations of ``owner`` not finished yet."""
    return int(await conn.fetchval(_OPEN_COUNT, owner))


async def created_since(conn: Executor, owner: str, since: datetime) -> int:
    """Generations ``owner`` started since ``since``."""
    return int(await conn.fetchval(_SINCE_COUNT, owner, since))


async def by_state_since(conn: Executor, since: datetime) -> dict[str, int]:
    """Every owner's generations since ``since``, by state."""
    return {row["state"]: int(row["n"]) for row in await conn.fetch(_BY_STATE_SINCE, since)}


async def by_model_since(conn: Executor, since: datetime, limit: int = 10) -> list[tuple[str, int]]:
    """The most used models since ``since``."""
    return [(row["model"], int(row["n"])) for row in await conn.fetch(_BY_MODEL_SINCE, since, limit)]


async def owners_since(conn: Executor, since: datetime, owner_prefix: str = "") -> int:
    """How many owners (those starting with ``owner_prefix``) started a generation since ``since``."""
    value: Any = await conn.fetchval(_OWNERS_SINCE, since, owner_prefix + "%")
    return int(value)
