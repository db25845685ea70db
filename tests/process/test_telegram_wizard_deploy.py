"""A deploy in the middle of a wizard: two real service processes on one database (polling), the
user halfway through a wizard when the leader is stopped or killed. The other process becomes the
leader and the user goes on with the same wizard, on the buttons shown before the deploy."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from app.kie.simulator import make_app
from app.kie.simulator.assets import build_png
from tests.service.test_telegram_wizard import SIGNED, last_text, open_model
from tests.support.fake_telegram import FakeBotApi, iter_buttons
from tests.support.processes import leader_and_passive, service_env
from tests.support.s3 import S3Server
from tests.support.service import ServiceProcess
from tests.support.stack import ServerFactory
from tests.support.telegram_user import TelegramUser

PROMPT = "a paper boat on a river"


async def fetch_rows(database_url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def all_updates_done(database_url: str, count: int, timeout: float = 30) -> None:
    """Every update the user sent is stored and handled (none is half-way on a dying process)."""
    deadline = time.monotonic() + timeout
    states: list[str] = []
    while time.monotonic() < deadline:
        states = [r["state"] for r in await fetch_rows(database_url, "SELECT state FROM telegram_updates")]
        if len(states) == count and set(states) == {"done"}:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"updates not handled: {states}")


async def delivered(database_url: str, timeout: float = 60) -> asyncpg.Record:
    deadline = time.monotonic() + timeout
    rows: list[asyncpg.Record] = []
    while time.monotonic() < deadline:
        rows = await fetch_rows(database_url, "SELECT * FROM telegram_deliveries")
        if len(rows) == 1 and rows[0]["state"] == "delivered":
            return rows[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"not delivered: {[dict(r) for r in rows]}")


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
async def test_a_wizard_goes_on_across_a_deploy_on_the_buttons_shown_before_it(
    how: str,
    s3: S3Server,
    aiohttp_server: ServerFactory,
    database_url: str,
    tmp_path: Path,
    services: list[ServiceProcess],
    session: aiohttp.ClientSession,
) -> None:
    async with FakeBotApi(long_poll_cap=1.0) as fake:
        kie = await aiohttp_server(make_app(latency=0.3))
        env = service_env(
            database_url,
            kie,
            tmp_path / "data",
            **s3.env(s3.new_bucket()),
            TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_BASE=fake.base_url,
            TELEGRAM_MODE="polling",
        )
        first, second = await leader_and_passive(services, env, tmp_path, session)

        # Before the deploy: the model, the prompt, the photo, and the duration question open.
        user = TelegramUser(fake)
        await open_model(user, "Video", "Kling 2.6 image to video")
        await user.say(PROMPT)
        photo = build_png(12, (90, 60, 30))
        [settings] = await user.photo(photo)
        assert "tap a setting" in (settings.text or ""), settings.text
        [question] = await user.press("duration:", message=settings)
        assert question.text == "Choose duration:"
        shown = len(user.bot_messages())
        # /start, Video, the model, Start, the prompt, the photo, duration: all handled, none in flight.
        await all_updates_done(database_url, count=7)

        # The deploy: the leader goes away mid-wizard; the other one takes over.
        if how == "sigterm":
            first.send(signal.SIGTERM)
        else:
            first.process.kill()  # type: ignore[union-attr]
        first.wait(15)
        await second.wait_for(session, "/health", lambda b: b["role"] == "active", timeout=30)

        # After it: the answer on the question shown before, then Generate on the old settings.
        [updated] = await user.press("10", exact=True, message=question, timeout=40)
        assert "duration: 10" in (updated.text or ""), updated.text
        [confirmation] = await user.press("Generate", message=settings)
        assert (confirmation.text or "").startswith("Ready to start"), confirmation.text
        await user.press("Confirm", replies=2)
        row = await delivered(database_url)
        assert row["message_ids"], dict(row)

        [generation] = await fetch_rows(database_url, "SELECT * FROM generations")
        assert generation["state"] == "succeeded" and generation["model"] == "kling-2.6/image-to-video"
        value: dict[str, Any] = json.loads(generation["input"])  # a plain connection: jsonb is text
        [url] = value["image_urls"]
        assert value == {"prompt": PROMPT, "image_urls": [url], "sound": False, "duration": "10"}
        assert SIGNED.search(url) and "/file/bot" not in url, url
        # The photo is in the shared storage: the instance left standing serves it.
        path = url.split("/files/", 1)[1]
        async with session.get(f"{second.base_url}/files/{path}") as resp:
            assert resp.status == 200 and await resp.read() == photo

        # Nothing was asked twice and nothing was lost: one reply per action after the deploy.
        texts = [m.text or m.caption or "" for m in user.bot_messages()]
        assert len(texts) == shown + 4, texts[shown - 1 :]
        assert (
            texts.count("Choose duration:") == 1
            and last_text(user) == "Started. I will send the result here."
        )
        updates = await fetch_rows(database_url, "SELECT state FROM telegram_updates")
        assert [u["state"] for u in updates] == ["done"] * 10
        for call in fake.calls():
            markup = call.params.get("reply_markup")
            for button in iter_buttons(markup if isinstance(markup, dict) else None):
                assert len(str(button.get("callback_data", "")).encode()) <= 64
