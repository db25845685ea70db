"""The bot's shared state on a real PostgreSQL: aiogram's FSM storage, the per-conversation lock
across "instances" (separate Database objects), the polling offset, and the inbox's per-chat order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey

from app.db import telegram_state, telegram_updates
from app.db.database import Database
from app.telegram.conversations import AdvisoryLockIsolation, PostgresStorage
from tests.support.databases import connected_database

KEY = StorageKey(bot_id=1, chat_id=42, user_id=42)


# Both wait on a gate ($3) first, inside the statement, so their snapshot is older than the lock.
# MATERIALIZED keeps the gate first; "+ g.zero" makes the lock depend on it.
PLAIN_LOCK_AFTER_GATE = """
WITH g AS MATERIALIZED (SELECT 0 AS zero FROM pg_advisory_xact_lock($3))
SELECT pg_try_advisory_lock($1 + g.zero) AS locked,
    (SELECT state FROM telegram_conversations WHERE key = $2) AS state
FROM g
"""
LOCK_FUNCTION_AFTER_GATE = """
WITH g AS MATERIALIZED (SELECT 0 AS zero FROM pg_advisory_xact_lock($3))
SELECT f.locked, f.state FROM g, telegram_lock_conversation($1 + g.zero, $2) AS f
"""


class Wizard(StatesGroup):
    prompt = State()


@pytest.fixture
async def databases(database_url: str) -> AsyncIterator[tuple[Database, Database]]:
    first, second = await connected_database(database_url), await connected_database(database_url)
    yield first, second
    await first.close()
    await second.close()


async def test_fsm_state_and_data_are_shared_by_instances(databases: tuple[Database, Database]) -> None:
    one, other = PostgresStorage(databases[0]), PostgresStorage(databases[1])
    assert await one.get_state(KEY) is None and await one.get_data(KEY) == {}
    await one.set_state(KEY, Wizard.prompt)
    await one.set_data(KEY, {"model": "google/nano-banana", "step": 1})
    assert await other.get_state(KEY) == "Wizard:prompt"
    assert await other.update_data(KEY, {"step": 2, "prompt": "a cat"}) == {
        "model": "google/nano-banana",
        "step": 2,
        "prompt": "a cat",
    }
    await other.set_state(KEY, None)
    assert await one.get_state(KEY) is None and (await one.get_data(KEY))["prompt"] == "a cat"
    # Another destiny or chat is another conversation.
    assert await one.get_data(StorageKey(bot_id=1, chat_id=42, user_id=42, destiny="other")) == {}
    assert await one.get_data(StorageKey(bot_id=1, chat_id=43, user_id=43)) == {}


async def test_one_handler_at_a_time_per_conversation_across_instances(
    databases: tuple[Database, Database],
) -> None:
    first, second = AdvisoryLockIsolation(databases[0]), AdvisoryLockIsolation(databases[1])
    order: list[str] = []
    held = asyncio.Event()

    async def a() -> None:
        async with first.lock(KEY):
            held.set()
            order.append("a-in")
            await asyncio.sleep(0.3)
            order.append("a-out")

    async def b() -> None:
        await held.wait()
        async with second.lock(KEY):
            order.append("b-in")

    async def elsewhere() -> None:
        await held.wait()
        async with second.lock(StorageKey(bot_id=1, chat_id=7, user_id=7)):
            order.append("other-chat")

    await asyncio.gather(a(), b(), elsewhere())
    assert order.index("b-in") > order.index("a-out")
    assert order.index("other-chat") < order.index("a-out"), "another chat never waits"


async def test_the_poll_offset_only_moves_forward(databases: tuple[Database, Database]) -> None:
    pool = databases[0].require_pool()
    assert await telegram_state.poll_offset(pool, 5) is None
    await telegram_state.advance_poll_offset(pool, 5, 101)
    await telegram_state.advance_poll_offset(pool, 5, 99)  # a stale leader's late write
    assert await telegram_state.poll_offset(pool, 5) == 101


async def test_the_inbox_hands_out_one_update_per_chat_in_order(databases: tuple[Database, Database]) -> None:
    pool = databases[0].require_pool()
    rows = [(10, 1, {"update_id": 10}), (11, 1, {"update_id": 11}), (12, 2, {"update_id": 12})]
    assert await telegram_updates.store(pool, rows) == [10, 11, 12]
    assert await telegram_updates.store(pool, rows[:1]) == [], "a duplicate is not stored again"
    first = await telegram_updates.claim(pool, "w1", lease_s=30, limit=10)
    assert [u.update_id for u in first] == [10, 12], "chat 1's second update waits for its first"
    assert await telegram_updates.claim(pool, "w2", lease_s=30, limit=10) == []
    await telegram_updates.retry_later(pool, 10, "w1", "boom", 0)
    again = await telegram_updates.claim(pool, "w2", lease_s=30, limit=10)
    assert [(u.update_id, u.attempts) for u in again] == [(10, 2)]
    await telegram_updates.mark_failed(pool, 10, "w2", "boom")
    await telegram_updates.mark_done(pool, [12], "w1")
    assert [u.update_id for u in await telegram_updates.claim(pool, "w3", lease_s=30, limit=10)] == [11]
    assert await telegram_updates.depth(pool) == (1, pytest.approx(0, abs=60))


async def test_the_lock_reads_what_the_previous_holder_wrote_just_before_unlocking(
    databases: tuple[Database, Database],
) -> None:
    """The conversation is read after its lock is granted, not with the snapshot the locking
    statement started with (aiogram issue 1317): a handler must never begin from stale state.

    The second instance's statement takes its snapshot, then waits on a gate the first holds; the
    first writes the state, releases the conversation, then the gate. A plain statement reading in
    that snapshot would see no state; the lock function must see the write."""
    holder, waiter = databases[0].require_pool(), databases[1].require_pool()
    built, lock_key, gate = "tg:1:42:42:default", 4242, 4343
    async with holder.acquire() as first, waiter.acquire() as second:
        waiter_pid = await second.fetchval("SELECT pg_backend_pid()")

        async def handover(statement: str, written: str) -> asyncpg.Record:
            """``first`` holds the conversation; ``second`` runs ``statement``, which takes its
            snapshot and waits at the gate; ``first`` writes ``written``, unlocks, opens the gate.
            What ``statement`` read (its lock is released again)."""
            await first.execute("SELECT pg_advisory_lock($1)", gate)
            task = asyncio.ensure_future(second.fetchrow(statement, lock_key, built, gate))
            async with asyncio.timeout(10):
                while not await first.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE pid = $1 AND NOT granted", waiter_pid
                ):
                    await asyncio.sleep(0.01)
            await telegram_state.set_state(first, built, written)
            await telegram_state.unlock_conversation(first, lock_key)
            await first.execute("SELECT pg_advisory_unlock($1)", gate)
            row = await task
            assert row is not None and row["locked"] is True
            await second.execute("SELECT pg_advisory_unlock($1)", lock_key)
            return row

        # The hazard is real: a plain statement reads in the snapshot it started with.
        assert await telegram_state.lock_and_read(first, lock_key, built) == (None, {})
        row = await handover(PLAIN_LOCK_AFTER_GATE, "Wizard:prompt")
        assert row["state"] is None, "the stale read the function avoids"

        # The same sequence through the lock function: the write is seen.
        assert await telegram_state.lock_and_read(first, lock_key, built) == ("Wizard:prompt", {})
        row = await handover(LOCK_FUNCTION_AFTER_GATE, "Wizard:confirm")
        assert row["state"] == "Wizard:confirm"
