"""The update processor on a real PostgreSQL with a real aiogram dispatcher: during a burst of
webhook requests the intake comes first (one handler at a time, paced, none starved), and once
the burst is over the backlog is handled at full width."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.types import Message

from app.db import telegram_updates
from app.db.database import Database
from app.telegram.inbox import UpdateInbox
from app.telegram.processor import UpdateProcessor
from tests.support.databases import connected_database

SLOTS = 4
BACKLOG = 40  # chats with one update each, stored before the burst
BURST_S = 1.0


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = await connected_database(database_url, SLOTS + 4)
    yield database
    await database.close()


def message_update(update_id: int, chat_id: int) -> dict[str, Any]:
    chat = {"id": chat_id, "type": "private", "first_name": "T"}
    user = {"id": chat_id, "is_bot": False, "first_name": "T"}
    return {
        "update_id": update_id,
        "message": {"message_id": update_id, "date": 1700000000, "chat": chat, "from": user, "text": "hi"},
    }


async def test_a_webhook_burst_gets_one_paced_handler_and_the_backlog_goes_wide_after(
    database: Database,
) -> None:
    inbox = UpdateInbox(database)
    inbox.start()
    starts: list[tuple[float, bool, int]] = []  # (when, burst on, handlers running then)
    running = 0
    router = Router()

    @router.message()
    async def handle(message: Message) -> None:
        nonlocal running
        running += 1
        starts.append((time.monotonic(), inbox.busy, running))
        try:
            await asyncio.sleep(0.02)
        finally:
            running -= 1

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    bot = Bot("42:TEST-TOKEN")
    processor = UpdateProcessor(database, dispatcher, bot, inbox, "test", concurrency=SLOTS)
    assert await inbox.store([message_update(n, 1000 + n) for n in range(1, BACKLOG + 1)]) == BACKLOG

    async def burst() -> None:
        # Eight webhook requests in flight at all times, Telegram redelivering updates already
        # stored (so the burst adds no work, only intake).
        async def request(n: int) -> None:
            while time.monotonic() < until:
                assert await inbox.receive(message_update(n, 1000 + n)) is False

        until = time.monotonic() + BURST_S
        await asyncio.gather(*(request(n) for n in range(1, 9)))

    bursting = asyncio.ensure_future(burst())
    async with asyncio.timeout(10):
        while not inbox.busy:
            await asyncio.sleep(0.001)
    processing = asyncio.ensure_future(processor.run())
    try:
        await bursting
        async with asyncio.timeout(30):
            while (await telegram_updates.depth(database.require_pool()))[0] or len(starts) < BACKLOG:
                await asyncio.sleep(0.02)
    finally:
        processing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await processing
        await inbox.stop()
        await bot.session.close()

    assert len(starts) == BACKLOG, "each stored update handled once"
    during = [(when, others) for when, busy, others in starts if busy]
    assert len(during) >= 2, "the burst does not starve the handlers"
    assert all(others == 1 for _, others in during), "one handler at a time while the burst lasts"
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(during)]
    assert min(gaps) >= 0.04, "paced: one start per _BURST_PACE_S at most"
    assert max(others for _, busy, others in starts if not busy) > 1, "after the burst, in parallel"
    done = await database.require_pool().fetchval(
        "SELECT count(*) FROM telegram_updates WHERE state = 'done'"
    )
    # The last handled updates are marked done by the next claim or at stop.
    assert done == BACKLOG
