"""The in-process service with its Telegram bot on the fake Bot API: fixtures and waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app.kie.simulator import make_app
from tests.support.fake_telegram import FakeBotApi
from tests.support.stack import ServerFactory, Stack, stack_on


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(long_poll_cap=0.5) as server:
        yield server


BotStack = Callable[..., Awaitable[Stack]]


@pytest.fixture
def bot_stack(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> BotStack:
    """Starts the service with the bot on ``fake`` in ``mode``, against the KIE simulator."""

    async def start(fake: FakeBotApi, mode: str, **env: str) -> Stack:
        kie = await aiohttp_server(make_app(latency=0.2))
        return await stack_on(
            aiohttp_server,
            http,
            database_url,
            tmp_path,
            kie,
            TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_BASE=fake.base_url,
            TELEGRAM_MODE=mode,
            **env,
        )

    return start


async def generations_of(stack: Stack, user_id: int) -> list[Any]:
    return list(
        await stack.pool.fetch(
            "SELECT * FROM generations WHERE owner = $1 ORDER BY created_at", f"telegram:{user_id}"
        )
    )


async def update_states(stack: Stack) -> list[str]:
    rows = await stack.pool.fetch("SELECT state FROM telegram_updates ORDER BY update_id")
    return [r["state"] for r in rows]


async def delivered(stack: Stack, count: int = 1, timeout: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout
    rows: list[Any] = []
    while time.monotonic() < deadline:
        rows = list(await stack.pool.fetch("SELECT * FROM telegram_deliveries ORDER BY created_at"))
        if len(rows) >= count and all(r["state"] in ("delivered", "failed") for r in rows):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries never finished: {[dict(r) for r in rows]}")
