"""The Telegram bot end to end: the real service in-process, the real aiogram client, a fake Bot
API server on loopback (tests/support/fake_telegram.py) and the KIE simulator."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import asyncpg
import pytest

from app.kie.simulator.assets import FILES
from tests.support.databases import with_database
from tests.support.fake_telegram import FakeBotApi, FakeUser
from tests.support.stack import model_of
from tests.support.telegram_stack import BotStack, delivered, generations_of, update_states


async def test_polling_imagine_delivers_one_photo_from_our_copy(
    bot_stack: BotStack, fake: FakeBotApi
) -> None:
    stack = await bot_stack(fake, "polling")
    await fake.wait_for_call("deleteWebhook", timeout=10)
    await fake.wait_for_call("setMyCommands", timeout=10)
    assert fake.calls("deleteWebhook")[0].params.get("drop_pending_updates") in (None, False)

    fake.push_update(fake.make_command("imagine", "a lighthouse at dusk"))
    [row] = await delivered(stack)
    assert row["state"] == "delivered" and row["outcome"] == "edited"
    [generation] = await generations_of(stack, fake.user.id)
    assert generation["state"] == "succeeded" and generation["model"] == "google/nano-banana"

    messages = fake.chat_messages(fake.user.id)
    assert [m.kind for m in messages] == ["photo"], [m.payload for m in messages]
    # The status message followed the generation before it became the photo.
    progress = [c.params.get("text") for c in fake.calls("editMessageText") if c.ok]
    assert progress and all(str(t).startswith(("At KIE", "Working")) for t in progress), progress
    assert messages[0].message_id == row["status_message_id"] and "Done" in (messages[0].caption or "")
    # Uploaded from our copy (multipart), not KIE's link: the bytes are the simulator's PNG.
    [edit] = fake.calls("editMessageMedia")
    assert edit.files and edit.files[0].data == FILES["png"][1]
    # The offset moved past the update: a new leader would not see it again.
    offset = await stack.pool.fetchval("SELECT next_offset FROM telegram_poll_offset")
    assert (
        offset
        == max(u["update_id"] for u in await stack.pool.fetch("SELECT update_id FROM telegram_updates")) + 1
    )


@pytest.mark.parametrize("mode", ["webhook", "polling"])
async def test_generate_delivers_exactly_one_result_for_an_image_a_video_an_album_and_a_track(
    mode: str, bot_stack: BotStack, fake: FakeBotApi
) -> None:
    stack = await bot_stack(fake, mode)
    if mode == "webhook":
        await fake.wait_for_call("setWebhook", timeout=10)
        hook = fake.calls("setWebhook")[0].params
        assert hook["url"] == stack.base_url + "/telegram/webhook" and hook["secret_token"]
        assert fake.token.split(":", 1)[1] not in hook["secret_token"]
        assert hook["allowed_updates"] and hook["max_connections"]

    video = next(
        m
        for m in stack.runtime.generations.catalog.models()
        if m.output == "video" and m.required == ["prompt"]
    )
    commands = [
        "google/nano-banana a red bicycle",
        f"{video.id} a fox running in snow",
        f"{model_of('midjourney').id} four cats",
        "suno/V5 a song about the sea",
    ]
    for count, args in enumerate(commands, 1):
        fake.push_update(fake.make_command("generate", args))
        rows = await delivered(stack, count)
    assert [r["state"] for r in rows] == ["delivered"] * 4
    assert [r["outcome"] for r in rows] == ["edited", "edited", "group", "edited"]
    kinds = [m.kind for m in fake.chat_messages(fake.user.id)]
    # The photo, the video and Suno's first track replace their status messages; the album is new
    # messages, with its status message saying "Done".
    assert (kinds.count("photo"), kinds.count("video"), kinds.count("audio")) == (5, 1, 2), kinds
    assert [len(r["message_ids"]) for r in rows] == [1, 1, 4, 2]
    assert len(await generations_of(stack, fake.user.id)) == 4
    assert all(d.ok for d in fake.deliveries())


async def test_webhook_secret_body_and_duplicates(bot_stack: BotStack, fake: FakeBotApi) -> None:
    stack = await bot_stack(fake, "polling")
    url = stack.base_url + "/telegram/webhook"
    secret = stack.runtime.telegram.webhook_secret  # type: ignore[union-attr]
    update = {"update_id": 777, **fake.make_command("imagine", "one red apple")}
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
        async with stack.session.post(url, json=update, headers=headers) as resp:
            assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"
    async with stack.session.post(
        url, data=b"{not json", headers={"X-Telegram-Bot-Api-Secret-Token": secret}
    ) as resp:
        assert resp.status == 400
    for _ in range(3):  # Telegram's retry of one update: stored once, one generation
        async with stack.session.post(
            url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}
        ) as resp:
            assert resp.status == 200
    await delivered(stack, 1)
    assert await stack.pool.fetchval("SELECT count(*) FROM telegram_updates") == 1
    assert len(await generations_of(stack, fake.user.id)) == 1


async def test_bad_commands_say_what_to_type_and_create_nothing(
    bot_stack: BotStack, fake: FakeBotApi
) -> None:
    stack = await bot_stack(fake, "polling")
    for command, args in (
        ("generate", "no/such-model a cat"),
        ("generate", ""),
        ("imagine", ""),
        ("start", ""),
        ("models", ""),
    ):
        fake.push_update(fake.make_command(command, args))
    await fake.wait_for(lambda: len(fake.chat_messages(fake.user.id)) >= 5, timeout=15, what="five answers")
    texts = [m.text or "" for m in fake.chat_messages(fake.user.id)]
    assert "no/such-model" in texts[0] and "/models" in texts[0]
    assert texts[1].startswith("Type /generate") and texts[2].startswith("Type /imagine")
    assert fake.chat_messages(fake.user.id)[3].reply_markup is not None
    assert "google/nano-banana" in "\n".join(texts[4:])
    assert await generations_of(stack, fake.user.id) == []


async def test_a_handler_that_keeps_failing_gets_an_apology_and_the_chat_goes_on(
    bot_stack: BotStack, fake: FakeBotApi
) -> None:
    stack = await bot_stack(fake, "polling")
    fake.fail_server_error(method="sendMessage", times=4)  # /help's answer fails on every attempt
    fake.push_update(fake.make_command("help"))
    fake.push_update(fake.make_command("start"))
    await fake.wait_for(
        lambda: len(fake.chat_messages(fake.user.id)) >= 2, timeout=20, what="apology and start"
    )
    texts = [m.text or "" for m in fake.chat_messages(fake.user.id)]
    assert texts[0].startswith("Sorry") and texts[1].startswith("Hi!"), texts
    deadline = time.monotonic() + 10
    while (states := await update_states(stack)) != ["failed", "done"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert states == ["failed", "done"]
    assert len(fake.calls("sendMessage")) == 6  # 4 failed answers to /help, the apology, /start's


async def test_a_webhook_update_that_arrives_while_the_database_is_down_is_redelivered_and_handled_once(
    bot_stack: BotStack, database_url: str
) -> None:
    async with FakeBotApi(long_poll_cap=0.5, webhook_max_attempts=200, webhook_retry_cap=0.2) as fake:
        stack = await bot_stack(fake, "webhook")
        await fake.wait_for_call("setWebhook", timeout=10)
        name = urlsplit(database_url).path.lstrip("/")
        # From another database: a database cannot refuse connections to itself.
        admin = await asyncpg.connect(with_database(database_url, "postgres"))
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            update_id = fake.push_update(fake.make_command("imagine", "a boat in fog"))
            assert update_id is not None
            refused = await fake.wait_for_delivery(update_id, ok=False, timeout=10)
            assert refused.status == 503, refused
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        finally:
            await admin.close()
        accepted = await fake.wait_for_delivery(update_id, timeout=30)
        assert accepted.status == 200
        await delivered(stack, 1, timeout=60)
        assert len(await generations_of(stack, fake.user.id)) == 1
        assert await stack.pool.fetchval("SELECT count(*) FROM telegram_updates") == 1
        assert [m.kind for m in fake.chat_messages(fake.user.id)] == ["photo"]


async def test_a_429_is_honoured_before_the_result_is_sent_again(
    bot_stack: BotStack, fake: FakeBotApi
) -> None:
    stack = await bot_stack(fake, "polling")
    fake.fail_retry_after(2, method="editMessageMedia", times=1)
    fake.push_update(fake.make_command("imagine", "a kite"))
    [row] = await delivered(stack)
    assert row["state"] == "delivered" and row["attempts"] == 2
    limited, sent = fake.calls("editMessageMedia")
    assert limited.status == 429 and sent.ok
    assert sent.at - limited.finished_at >= 1.9  # type: ignore[operator]
    assert [m.kind for m in fake.chat_messages(fake.user.id)] == ["photo"]


async def test_a_second_poller_is_a_409_that_is_backed_off_shown_and_survived(
    bot_stack: BotStack, fake: FakeBotApi
) -> None:
    stack = await bot_stack(fake, "polling")
    await fake.wait_for_call("getUpdates", timeout=10)
    rogue = f"{fake.base_url}/bot{fake.token}/getUpdates"
    # Someone else polls with our token: each of their long polls ends ours with a 409.
    conflicts = 0
    deadline = time.monotonic() + 15
    while conflicts < 2 and time.monotonic() < deadline:
        async with stack.session.post(rogue, json={"timeout": 1}) as resp:
            await resp.read()
        conflicts = len([c for c in fake.calls("getUpdates") if c.status == 409])
    assert conflicts >= 2
    health = await (await stack.session.get(stack.base_url + "/health/detailed")).json()
    telegram = health["components"]["telegram"]
    assert telegram["status"] == "down" and "Conflict" in telegram["last_error"], telegram
    # Backed off: at least half a second after each conflict (never a busy loop), capped at a minute.
    state = stack.runtime.telegram.transport.state  # type: ignore[union-attr]
    assert state.conflict_delays and all(0.5 <= d <= 60 for d in state.conflict_delays), state.conflict_delays
    # The rogue stops: ours resumes, handles what comes, and health no longer shows the conflict.
    fake.push_update(fake.make_command("help"))
    await fake.wait_for(lambda: len(fake.chat_messages(fake.user.id)) >= 1, timeout=90, what="help answered")
    health = await (await stack.session.get(stack.base_url + "/health/detailed")).json()
    assert "conflict" not in health["components"]["telegram"], health["components"]["telegram"]


async def test_a_polling_replay_of_an_update_starts_nothing_twice(
    bot_stack: BotStack, fake: FakeBotApi
) -> None:
    stack = await bot_stack(fake, "polling")
    update = {"update_id": 424242, **fake.make_command("imagine", "a green door")}
    fake.push_update(update)
    await delivered(stack, 1)
    # The same update again, as Telegram sends it when a getUpdates answer was lost. Our offset
    # already confirmed it, so a replay needs the offset moved back as a lost answer would leave it.
    await stack.pool.execute("UPDATE telegram_poll_offset SET next_offset = 424242")
    fake.push_update(dict(update))

    def replayed() -> bool:
        answers = [c.result for c in fake.calls("getUpdates") if c.ok and c.result]
        return sum(1 for batch in answers for u in batch if u["update_id"] == 424242) >= 2

    await fake.wait_for(replayed, timeout=10, what="the update polled a second time")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # give a second generation every chance to appear
        assert len(await generations_of(stack, fake.user.id)) == 1
        await asyncio.sleep(0.1)
    assert await stack.pool.fetchval("SELECT count(*) FROM telegram_updates") == 1
    assert [m.kind for m in fake.chat_messages(fake.user.id)] == ["photo"]


async def test_more_chats_at_once_than_the_pool_has_connections_are_all_handled(
    bot_stack: BotStack, fake: FakeBotApi
) -> None:
    # Each handler holds its chat's lock on one pooled connection and queries on another: the
    # workers must never take more handlers at once than the pool can serve.
    stack = await bot_stack(fake, "polling", DB_POOL_MAX_SIZE="4")
    users = [fake.add_user(FakeUser(id=30_000 + i, first_name=f"U{i}")) for i in range(12)]
    for user in users:
        fake.push_update(fake.make_command("help", user=user))
    await fake.wait_for(
        lambda: all(fake.chat_messages(u.id) for u in users), timeout=30, what="an answer in every chat"
    )
    deadline = time.monotonic() + 10
    while set(await update_states(stack)) != {"done"} and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert set(await update_states(stack)) == {"done"}
