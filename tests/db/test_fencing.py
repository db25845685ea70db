"""The epoch fence and the supervision of singleton work, in-process on a real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from app.db.leadership import StaleEpochError, bump_epoch, fenced_transaction, read_leadership
from app.leader import Leader
from app.supervision import supervise


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    await pool.execute("CREATE TABLE fenced_writes (epoch bigint NOT NULL)")
    yield pool
    await pool.close()


async def test_epochs_increase_and_record_the_holder(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        first, _ = await bump_epoch(conn, "svc", "a")
        second, since = await bump_epoch(conn, "svc", "b")
        other, _ = await bump_epoch(conn, "another-deployment", "c")
    assert (first, second, other) == (1, 2, 1)
    record = await read_leadership(pool, "svc")
    assert record is not None and record.epoch == 2 and record.holder == "b" and record.acquired_at == since


async def test_a_stale_leaders_write_is_rejected(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        old, _ = await bump_epoch(conn, "svc", "old")
    async with fenced_transaction(pool, "svc", old) as conn:
        await conn.execute("INSERT INTO fenced_writes VALUES ($1)", old)
    async with pool.acquire() as conn:
        new, _ = await bump_epoch(conn, "svc", "new")

    with pytest.raises(StaleEpochError) as caught:
        async with fenced_transaction(pool, "svc", old) as conn:
            await conn.execute("INSERT INTO fenced_writes VALUES ($1)", old)
    assert caught.value.epoch == old and caught.value.current == new
    async with fenced_transaction(pool, "svc", new) as conn:
        await conn.execute("INSERT INTO fenced_writes VALUES ($1)", new)
    assert [r["epoch"] for r in await pool.fetch("SELECT epoch FROM fenced_writes")] == [old, new]


async def test_a_bump_waits_for_a_fenced_write_in_flight(pool: asyncpg.Pool) -> None:
    """So an older epoch's write can never commit after the newer term has begun."""
    async with pool.acquire() as conn:
        epoch, _ = await bump_epoch(conn, "svc", "old")
    async with fenced_transaction(pool, "svc", epoch) as conn:
        await conn.execute("INSERT INTO fenced_writes VALUES ($1)", epoch)

        async def bump() -> int:
            async with pool.acquire() as other:
                return (await bump_epoch(other, "svc", "new"))[0]

        bumping = asyncio.create_task(bump())
        await asyncio.sleep(0.2)
        assert not bumping.done(), "the bump must wait for the fenced write to commit"
    async with asyncio.timeout(5):
        assert await bumping == epoch + 1


async def test_stale_epoch_with_no_leadership_row(pool: asyncpg.Pool) -> None:
    with pytest.raises(StaleEpochError):
        async with fenced_transaction(pool, "never-led", 1):
            pass


async def test_supervise_restarts_a_crashing_task_and_stops_on_cancel() -> None:
    calls = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("crash")
        done.set()
        await asyncio.sleep(3600)

    from app.backoff import Backoff

    task = asyncio.create_task(supervise("flaky", flaky, Backoff(base=0.01, cap=0.02)))
    async with asyncio.timeout(5):
        await done.wait()
    assert calls == 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_singleton_names_are_unique() -> None:
    async def dsn() -> str:
        return "postgresql://unused@localhost/x"

    leader = Leader(name="svc", instance="a", dsn_provider=dsn, pool_getter=lambda: None)

    async def work(term: object) -> None:
        return None

    leader.run_when_active("job", work)
    with pytest.raises(ValueError, match="twice"):
        leader.run_when_active("job", work)
