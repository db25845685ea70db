"""SQL for the leadership table and the epoch fence that guards singleton writes.

The epoch is bumped on every acquisition. A fenced write runs in a transaction
that first takes the leadership row ``FOR SHARE`` and checks the epoch: a bump
(an UPDATE of that row) waits for every fenced write in flight and every later
fenced write of an older epoch is rejected, so writes of an older epoch can
never commit after the newer leader's first write.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from app.db.connection import Conn, Executor

_BUMP = """
INSERT INTO leadership (name, epoch, holder, acquired_at)
VALUES ($1, 1, $2, now())
ON CONFLICT (name) DO UPDATE
    SET epoch = leadership.epoch + 1, holder = EXCLUDED.holder, acquired_at = EXCLUDED.acquired_at
RETURNING epoch, acquired_at
"""
_READ = "SELECT epoch, holder, acquired_at FROM leadership WHERE name = $1"
_FENCE = "SELECT epoch FROM leadership WHERE name = $1 FOR SHARE"
_LOCK = "SELECT pg_advisory_lock($1)"
_UNLOCK = "SELECT pg_advisory_unlock($1)"
_KEEPALIVE = "SELECT 1"
# SET LOCAL takes no parameters; the value is our own constant, checked below.
_SET_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '{}'"


class StaleEpochError(RuntimeError):
    """A singleton write was attempted under an epoch that is no longer current."""

    def __init__(self, name: str, epoch: int, current: int | None) -> None:
        self.epoch = epoch
        self.current = current
        super().__init__(f"leadership {name!r}: epoch {epoch} is stale (current {current})")


@dataclass(frozen=True)
class LeadershipRecord:
    """The current holder of a leadership name."""

    epoch: int
    holder: str | None
    acquired_at: datetime | None


async def wait_for_lock(conn: Conn, key: int) -> None:
    """Wait inside ``pg_advisory_lock`` until the session holds ``key``.

    Raises ``asyncpg.LockNotAvailableError`` when the session's ``lock_timeout`` passes first, so
    the caller's loop proves the session alive between waits.
    """
    await conn.execute(_LOCK, key, timeout=10)


async def unlock(conn: Conn, key: int, timeout: float) -> None:
    """Release the session lock ``key`` (a peer waiting inside the lock gets it at once)."""
    await conn.execute(_UNLOCK, key, timeout=timeout)


async def keepalive(conn: Conn, timeout: float) -> None:
    """One round trip on the lock connection: proves the session (and so the lock) alive."""
    await conn.fetchval(_KEEPALIVE, timeout=timeout)


async def set_local_lock_timeout(conn: Conn, value: str) -> None:
    """``SET LOCAL lock_timeout`` for the current transaction (``value`` such as ``15s``)."""
    if not value[:-1].isdigit() or value[-1] not in "sm":
        raise ValueError(f"not a lock timeout: {value!r}")
    await conn.execute(_SET_LOCK_TIMEOUT.format(value))


async def bump_epoch(conn: Conn, name: str, holder: str) -> tuple[int, datetime]:
    """Record a new term for ``name`` held by ``holder``; return its epoch and start time."""
    row = await conn.fetchrow(_BUMP, name, holder)
    assert row is not None
    return int(row["epoch"]), row["acquired_at"]


async def read_leadership(conn: Executor, name: str) -> LeadershipRecord | None:
    """The current term of ``name``, or None if no one ever led."""
    row = await conn.fetchrow(_READ, name)
    if row is None:
        return None
    return LeadershipRecord(int(row["epoch"]), row["holder"], row["acquired_at"])


@contextlib.asynccontextmanager
async def fenced_transaction(pool: asyncpg.Pool, name: str, epoch: int) -> AsyncIterator[Conn]:
    """A transaction in which writes happen only while ``epoch`` is the current one.

    Raises :class:`StaleEpochError` (and writes nothing) when a newer term exists.
    """
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchval(_FENCE, name)
        if current != epoch:
            raise StaleEpochError(name, epoch, current)
        yield conn
