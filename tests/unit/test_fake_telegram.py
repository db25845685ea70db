"""The fake Bot API, driven by the real aiogram 3 client over loopback HTTP.

Each test checks one behaviour the bot code will rely on, the way aiogram sees it: parsed types,
its exception classes, and the fake's records of what arrived on the wire.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    InputMediaVideo,
    Update,
)
from aiohttp import web

from tests.support.fake_telegram import (
    CONFLICT_OTHER_GET_UPDATES,
    CONFLICT_SET_WEBHOOK,
    CONFLICT_WEBHOOK_ACTIVE,
    MESSAGE_NOT_MODIFIED,
    FakeBotApi,
)

# A minimal valid PNG header (signature + IHDR with 640x480): enough for the size to be read.
PNG_640X480 = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    + (640).to_bytes(4, "big")
    + (480).to_bytes(4, "big")
    + b"\x08\x02\x00\x00\x00"
    + b"pixels" * 20
)

BotFactory = Callable[[], Bot]


def keyboard(*datas: str) -> InlineKeyboardMarkup:
    """One row of buttons, labelled and keyed by their callback data."""
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=d.title(), callback_data=d) for d in datas]]
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    """A started fake, stopped after the test."""
    async with FakeBotApi() as server:
        yield server


@pytest.fixture
async def make_bot(fake: FakeBotApi) -> AsyncIterator[BotFactory]:
    """Real aiogram bots pointed at the fake; their sessions are closed together at the end."""
    sessions: list[AiohttpSession] = []

    def factory() -> Bot:
        session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
        sessions.append(session)
        return Bot(fake.token, session=session)

    yield factory
    # AiohttpSession.close() waits 250 ms for TLS shutdown; closing them at once pays that once.
    await asyncio.gather(*(s.close() for s in sessions))


@pytest.fixture
def bot(make_bot: BotFactory) -> Bot:
    """One real aiogram bot pointed at the fake."""
    return make_bot()


class Receiver:
    """A webhook endpoint on loopback that answers with the statuses it is given, in order."""

    def __init__(self, statuses: list[int], reply: dict[str, Any] | None = None) -> None:
        self.statuses = statuses
        self.reply = reply
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.json()))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200 and self.reply is not None:
            return web.json_response(self.reply)
        return web.Response(status=status)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def started(fake: FakeBotApi, method: str, count: int = 1) -> None:
    """Wait until ``count`` calls of ``method`` have arrived (they may still be waiting)."""
    await fake.wait_for(lambda: len(fake.calls(method)) >= count, timeout=2.0, what=f"{method} arrived")


async def raw_post(url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """POST without aiogram, to see the exact envelope."""
    async with aiohttp.ClientSession() as session, session.post(url, **kwargs) as response:
        return response.status, json.loads(await response.text())


# ---- identity and envelopes -------------------------------------------------------------


async def test_get_me_answers_as_the_configured_bot(fake: FakeBotApi, bot: Bot) -> None:
    me = await bot.get_me()

    assert (me.id, me.is_bot, me.username) == (123456789, True, "fake_test_bot")
    call = fake.last_call("getMe")
    assert call.path == "/bot123456789:***/getMe"
    assert fake.token.split(":")[1] not in call.path


async def test_tokens_and_methods_are_checked_like_telegram(fake: FakeBotApi, make_bot: BotFactory) -> None:
    status, body = await raw_post(f"{fake.base_url}/bot42:someone-else/getMe")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})

    status, body = await raw_post(f"{fake.base_url}/botnot-a-token/getMe")
    assert (status, body["description"]) == (401, "Unauthorized: invalid token specified")

    status, body = await raw_post(f"{fake.base_url}/bot{fake.token}/noSuchMethod")
    assert (status, body["description"]) == (404, "Not Found: method not found")

    stranger = Bot("42:someone-else", session=make_bot().session)
    with pytest.raises(TelegramUnauthorizedError):
        await stranger.get_me()


async def test_urlencoded_json_and_query_bodies_are_all_read(fake: FakeBotApi) -> None:
    api = f"{fake.base_url}/bot{fake.token}"
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}

    status, form = await raw_post(f"{api}/sendMessage", data={"chat_id": "7", "text": "form"})
    assert status == 200
    status, js = await raw_post(
        f"{api}/sendMessage", json={"chat_id": 7, "text": "json", "reply_markup": markup}
    )
    assert status == 200
    status, query = await raw_post(f"{api}/SENDMESSAGE?chat_id=7&text=query")
    assert status == 200  # method names are case-insensitive on Telegram too

    assert [m.text for m in fake.chat_messages(7)] == ["form", "json", "query"]
    assert [form["result"]["message_id"], js["result"]["message_id"], query["result"]["message_id"]] == [
        1,
        2,
        3,
    ]
    assert js["result"]["reply_markup"] == markup
    first, second, _ = fake.calls("sendMessage")
    assert first.params == {"chat_id": 7, "text": "form"} and first.fields == {"chat_id": "7", "text": "form"}
    assert second.params["reply_markup"] == markup
    assert len(fake.send_times(7)) == 3 and fake.send_times(7) == sorted(fake.send_times(7))


# ---- getUpdates ---------------------------------------------------------------------------


async def test_get_updates_offset_confirms_and_forgets(fake: FakeBotApi, bot: Bot) -> None:
    pushed = [fake.push_update(fake.make_text_message(f"m{i}")) for i in range(4)]
    ids = [i for i in pushed if i is not None]
    assert ids == pushed == [100_000_001, 100_000_002, 100_000_003, 100_000_004]

    everything = await bot.get_updates()
    assert [u.update_id for u in everything] == ids
    assert everything[0].message is not None and everything[0].message.text == "m0"

    # Without an offset nothing is confirmed: the same updates come again, limited.
    assert [u.update_id for u in await bot.get_updates(limit=2)] == ids[:2]

    # An offset confirms everything below it, for good.
    assert [u.update_id for u in await bot.get_updates(offset=ids[2])] == ids[2:]
    assert [u.update_id for u in await bot.get_updates()] == ids[2:]

    # A negative offset keeps only that many from the end.
    assert [u.update_id for u in await bot.get_updates(offset=-1)] == ids[3:]
    assert [u["update_id"] for u in fake.pending_updates()] == ids[3:]

    assert await bot.get_updates(offset=ids[3] + 1) == []
    assert fake.pending_updates() == []


async def test_long_poll_returns_as_soon_as_an_update_arrives(fake: FakeBotApi, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await started(fake, "getUpdates")
    assert not poll.done()

    update_id = fake.push_update(fake.make_command("start", "deep-link"))

    updates = await poll
    assert [u.update_id for u in updates] == [update_id]
    message = updates[0].message
    assert message is not None and message.text == "/start deep-link"
    assert message.entities is not None and message.entities[0].type == "bot_command"


async def test_long_poll_is_bounded() -> None:
    async with FakeBotApi(long_poll_cap=0.05) as fake:
        bot = Bot(fake.token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url)))
        try:
            assert await bot.get_updates(timeout=30) == []
        finally:
            await bot.session.close()


async def test_a_second_long_poll_ends_the_first_with_409(fake: FakeBotApi, make_bot: BotFactory) -> None:
    first, second = make_bot(), make_bot()
    first_poll = asyncio.create_task(first.get_updates(timeout=30))
    await started(fake, "getUpdates")
    second_poll = asyncio.create_task(second.get_updates(timeout=30))

    with pytest.raises(TelegramConflictError) as conflict:
        await first_poll
    assert conflict.value.message == CONFLICT_OTHER_GET_UPDATES

    update_id = fake.push_update(fake.make_text_message("for the survivor"))
    assert [u.update_id for u in await second_poll] == [update_id]
    assert [c.status for c in fake.calls("getUpdates")] == [409, 200]


async def test_get_updates_conflicts_with_a_webhook(fake: FakeBotApi, bot: Bot) -> None:
    async with Receiver([]) as receiver:
        poll = asyncio.create_task(bot.get_updates(timeout=30))
        await started(fake, "getUpdates")

        assert await bot.set_webhook(receiver.url)
        with pytest.raises(TelegramConflictError) as ended:
            await poll
        assert ended.value.message == CONFLICT_SET_WEBHOOK

        with pytest.raises(TelegramConflictError) as refused:
            await bot.get_updates()
        assert refused.value.message == CONFLICT_WEBHOOK_ACTIVE

        assert await bot.delete_webhook()
        assert await bot.get_updates() == []
        assert fake.last_call("deleteWebhook").description == "Webhook was deleted"


async def test_allowed_updates_filters_updates_created_afterwards(fake: FakeBotApi, bot: Bot) -> None:
    await bot.send_message(fake.user.id, "pick", reply_markup=keyboard("yes"))
    assert await bot.get_updates(allowed_updates=["callback_query"]) == []

    assert fake.push_update(fake.make_text_message("ignored")) is None
    press = fake.make_callback_query(fake.user.id, 1, "yes")
    update_id = fake.push_update(press)

    # The setting sticks without being sent again, as on Telegram.
    updates = await bot.get_updates()
    assert [u.update_id for u in updates] == [update_id]
    assert updates[0].callback_query is not None and updates[0].callback_query.data == "yes"


# ---- webhook --------------------------------------------------------------------------------


async def test_webhook_delivers_with_secret_and_retries_after_500(fake: FakeBotApi, bot: Bot) -> None:
    async with Receiver([500, 200]) as receiver:
        assert await bot.set_webhook(receiver.url, secret_token="s3cret_token-1", drop_pending_updates=True)
        assert fake.last_call("setWebhook").description == "Webhook was set"

        update_id = fake.push_update(fake.make_text_message("via webhook"))
        assert update_id is not None
        await fake.wait_for_delivery(update_id)

        attempts = fake.deliveries(update_id)
        assert [(d.attempt, d.status) for d in attempts] == [(1, 500), (2, 200)]
        assert [h["X-Telegram-Bot-Api-Secret-Token"] for h, _ in receiver.requests] == ["s3cret_token-1"] * 2
        update = Update.model_validate(receiver.requests[-1][1])
        assert update.update_id == update_id
        assert update.message is not None and update.message.text == "via webhook"

        info = await bot.get_webhook_info()
        assert info.url == receiver.url
        assert info.pending_update_count == 0
        assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
        assert info.last_error_date is not None


async def test_webhook_gives_up_after_bounded_attempts() -> None:
    async with (
        FakeBotApi(webhook_max_attempts=3, webhook_retry_base=0.001) as fake,
        Receiver([503] * 5) as hook,
    ):
        bot = Bot(fake.token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url)))
        try:
            await bot.set_webhook(hook.url)
            update_id = fake.push_update(fake.make_text_message("lost"))
            assert update_id is not None
            await fake.wait_for(lambda: fake.pending_updates() == [], what="update dropped")
            assert [d.status for d in fake.deliveries(update_id)] == [503, 503, 503]
            assert (await bot.get_webhook_info()).pending_update_count == 0
        finally:
            await bot.session.close()


async def test_webhook_reply_method_is_executed(fake: FakeBotApi, bot: Bot) -> None:
    reply = {"method": "sendMessage", "chat_id": fake.user.id, "text": "answered in the reply"}
    async with Receiver([], reply=reply) as receiver:
        await bot.set_webhook(receiver.url)
        fake.push_update(fake.make_text_message("hello"))
        call = await fake.wait_for_call("sendMessage")

    assert call.via == "webhook_reply" and call.ok
    assert [m.text for m in fake.chat_messages(fake.user.id)] == ["answered in the reply"]


async def test_set_webhook_refuses_non_loopback_and_bad_secrets(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="loopback"):
        await bot.set_webhook("https://example.com/hook")
    with pytest.raises(TelegramBadRequest, match="secret token contains unallowed characters"):
        await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="no spaces")


# ---- messages -------------------------------------------------------------------------------


async def test_send_and_edit_message_with_not_modified(fake: FakeBotApi, bot: Bot) -> None:
    chat = fake.user.id
    sent = await bot.send_message(chat, "<b>Working</b>…", parse_mode="HTML", reply_markup=keyboard("cancel"))
    assert sent.text == "Working…"
    assert sent.entities is not None and (sent.entities[0].type, sent.entities[0].length) == ("bold", 7)
    assert sent.chat.id == chat and sent.chat.first_name == "Alice"

    edited = await bot.edit_message_text(
        "Done", chat_id=chat, message_id=sent.message_id, reply_markup=keyboard("again")
    )
    assert not isinstance(edited, bool) and edited.text == "Done" and edited.edit_date is not None

    # The same text and keyboard again: Telegram's own 400, no injection needed.
    with pytest.raises(TelegramBadRequest) as same:
        await bot.edit_message_text(
            "Done", chat_id=chat, message_id=sent.message_id, reply_markup=keyboard("again")
        )
    assert same.value.message == MESSAGE_NOT_MODIFIED
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=chat, message_id=sent.message_id, reply_markup=keyboard("again")
        )

    # Leaving out reply_markup removes the keyboard, so that is a change.
    await bot.edit_message_text("Done", chat_id=chat, message_id=sent.message_id)

    (only,) = fake.chat_messages(chat)
    assert (only.text, only.reply_markup, only.edits) == ("Done", None, 2)

    fake.fail_not_modified(method="editMessageText")
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Different", chat_id=chat, message_id=sent.message_id)
    assert fake.message(chat, sent.message_id).text == "Done"

    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=chat, message_id=999)


async def test_delete_message(fake: FakeBotApi, bot: Bot) -> None:
    first = await bot.send_message(5, "one")
    await bot.send_message(5, "two")
    assert await bot.delete_message(5, first.message_id)

    assert [m.text for m in fake.chat_messages(5)] == ["two"]
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(5, first.message_id)


async def test_bad_html_fails_like_telegram(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match='Unsupported start tag "div" at byte offset 3'):
        await bot.send_message(1, "ok <div>x</div>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(1, "   ")


async def test_callback_query_answered_once(fake: FakeBotApi, bot: Bot) -> None:
    sent = await bot.send_message(fake.user.id, "Choose", reply_markup=keyboard("a", "b"))
    with pytest.raises(LookupError):
        fake.make_callback_query(fake.user.id, sent.message_id, "c")

    fake.push_update(fake.make_callback_query(fake.user.id, sent.message_id, "b"))
    (update,) = await bot.get_updates()
    query = update.callback_query
    assert query is not None and query.data == "b" and query.from_user.id == fake.user.id
    assert query.message is not None and query.message.message_id == sent.message_id

    assert await bot.answer_callback_query(query.id, text="Picked b")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)
    assert [(a.text, a.show_alert) for a in fake.callback_answers()] == [("Picked b", False)]


async def test_chat_action_and_commands(fake: FakeBotApi, bot: Bot) -> None:
    assert await bot.send_chat_action(fake.user.id, "upload_photo")
    assert await bot.set_my_commands([BotCommand(command="start", description="Start")])

    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    assert fake.my_commands() == [{"command": "start", "description": "Start"}]
    assert fake.last_call("sendChatAction").params == {"chat_id": fake.user.id, "action": "upload_photo"}


# ---- media ----------------------------------------------------------------------------------


async def test_send_photo_by_url_and_by_upload(fake: FakeBotApi, bot: Bot) -> None:
    chat = fake.user.id
    url = "https://cdn.example/result.png"
    fake.register_url(url, PNG_640X480)

    by_url = await bot.send_photo(chat, url, caption="from KIE")
    assert fake.last_call("sendPhoto").params["photo"] == url
    assert by_url.photo is not None and by_url.caption == "from KIE"
    assert (by_url.photo[-1].width, by_url.photo[-1].height) == (640, 480)

    data = PNG_640X480 + b"-uploaded"
    uploaded = await bot.send_photo(chat, BufferedInputFile(data, filename="result.png"))
    call = fake.last_call("sendPhoto")
    (part,) = call.files
    assert call.params["photo"] == f"attach://{part.name}"  # aiogram always attaches by reference
    assert (part.filename, part.size, part.sha256) == (
        "result.png",
        len(data),
        hashlib.sha256(data).hexdigest(),
    )

    assert uploaded.photo is not None
    downloaded = await bot.download(uploaded.photo[-1].file_id)
    assert downloaded is not None and downloaded.read() == data

    # Sending a known file_id again reuses the file: no new upload.
    again = await bot.send_photo(chat, uploaded.photo[-1].file_id)
    assert again.photo is not None and again.photo[-1].file_id == uploaded.photo[-1].file_id
    assert [m.kind for m in fake.chat_messages(chat)] == ["photo", "photo", "photo"]

    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(chat, "no-such-file-id")


async def test_send_media_group_with_attached_parts(fake: FakeBotApi, bot: Bot) -> None:
    first, second = PNG_640X480 + b"1", PNG_640X480 + b"2"
    album = await bot.send_media_group(
        fake.user.id,
        [
            InputMediaPhoto(media=BufferedInputFile(first, filename="1.png"), caption="one"),
            InputMediaPhoto(media=BufferedInputFile(second, filename="2.png")),
            InputMediaPhoto(media="https://cdn.example/3.jpg"),
        ],
    )

    call = fake.last_call("sendMediaGroup")
    references = [item["media"] for item in call.params["media"]]
    assert references[:2] == [f"attach://{p.name}" for p in call.files]
    assert references[2] == "https://cdn.example/3.jpg"
    assert [p.sha256 for p in call.files] == [hashlib.sha256(b).hexdigest() for b in (first, second)]

    assert len(album) == 3 and len({m.media_group_id for m in album}) == 1
    shown = fake.chat_messages(fake.user.id)
    assert [(m.kind, m.caption) for m in shown] == [("photo", "one"), ("photo", None), ("photo", None)]
    assert [m.message_id for m in shown] == [1, 2, 3]


async def test_edit_message_media_replaces_the_file(fake: FakeBotApi, bot: Bot) -> None:
    sent = await bot.send_photo(fake.user.id, BufferedInputFile(PNG_640X480, filename="draft.png"))
    new_video = b"\x00\x00\x00\x18ftypmp42" + b"frames" * 10

    edited = await bot.edit_message_media(
        InputMediaVideo(media=BufferedInputFile(new_video, filename="final.mp4"), caption="final"),
        chat_id=fake.user.id,
        message_id=sent.message_id,
    )

    assert not isinstance(edited, bool) and edited.video is not None and edited.photo is None
    assert edited.caption == "final"
    (message,) = fake.chat_messages(fake.user.id)
    assert (message.kind, message.caption, message.edits) == ("video", "final", 1)
    assert fake.file(edited.video.file_id).sha256 == hashlib.sha256(new_video).hexdigest()
    assert fake.last_call("editMessageMedia").files[0].filename == "final.mp4"

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_media(
            InputMediaVideo(media=edited.video.file_id, caption="final"),
            chat_id=fake.user.id,
            message_id=sent.message_id,
        )


async def test_get_file_and_download_of_a_users_photo(fake: FakeBotApi, bot: Bot) -> None:
    fake.push_update(fake.make_photo_message(PNG_640X480, caption="make it blue"))
    (update,) = await bot.get_updates()
    assert update.message is not None and update.message.photo is not None
    largest = update.message.photo[-1]

    file = await bot.get_file(largest.file_id)
    assert file.file_path is not None and file.file_size == len(PNG_640X480)
    downloaded = await bot.download(largest)
    assert downloaded is not None and downloaded.read() == PNG_640X480
    assert [d.status for d in fake.downloads()] == [200]

    document_id = fake.add_file(b"%PDF-1.4 ...", file_name="brief.pdf")
    downloaded = await bot.download(document_id)
    assert downloaded is not None and downloaded.read() == b"%PDF-1.4 ..."

    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("unknown")


# ---- faults -------------------------------------------------------------------------------


async def test_retry_after_is_surfaced_once(fake: FakeBotApi, bot: Bot) -> None:
    fault = fake.fail_retry_after(3, method="sendMessage")

    with pytest.raises(TelegramRetryAfter) as flood:
        await bot.send_message(9, "too fast")
    assert flood.value.retry_after == 3

    await bot.send_message(9, "later")
    assert fault.exhausted
    assert [m.text for m in fake.chat_messages(9)] == ["later"]
    assert [(c.status, c.ok) for c in fake.calls("sendMessage", chat_id=9)] == [(429, False), (200, True)]


async def test_server_errors_counted_and_per_method(fake: FakeBotApi, bot: Bot) -> None:
    fake.fail_server_error(502, description="Bad Gateway", method="sendMessage", times=2)

    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.send_message(9, "x")
    await bot.get_me()  # another method is untouched
    await bot.send_message(9, "through")

    assert [c.status for c in fake.calls("sendMessage")] == [502, 502, 200]


async def test_accept_then_drop_performs_the_call_but_never_answers(fake: FakeBotApi, bot: Bot) -> None:
    fake.accept_then_drop(method="sendMessage", chat_id=9)

    with pytest.raises(TelegramNetworkError):
        await bot.send_message(9, "did it arrive?")

    assert [m.text for m in fake.chat_messages(9)] == ["did it arrive?"]  # it did: a retry would duplicate
    call = fake.last_call("sendMessage")
    assert call.dropped and call.performed and call.status is None
    await bot.send_message(9, "next")  # the client recovers on a new connection
    assert len(fake.chat_messages(9)) == 2


async def test_delay_holds_the_call_before_performing_it(fake: FakeBotApi, bot: Bot) -> None:
    fake.delay(0.05, method="sendMessage")
    sending = asyncio.create_task(bot.send_message(9, "slow"))
    await started(fake, "sendMessage")
    assert fake.chat_messages(9) == []  # arrived, not yet carried out

    await sending
    assert [m.text for m in fake.chat_messages(9)] == ["slow"]


async def test_blocked_user_is_forbidden(fake: FakeBotApi, bot: Bot) -> None:
    fake.block_chat(fake.user.id)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(fake.user.id, "hello?")


async def test_waiting_for_a_call_from_elsewhere(fake: FakeBotApi, bot: Bot) -> None:
    async def later(action: Awaitable[Any]) -> None:
        await asyncio.sleep(0)
        await action

    task = asyncio.create_task(later(bot.send_message(3, "eventually")))
    call = await fake.wait_for_call("sendMessage", chat_id=3)
    await task
    assert call.ok and call.result["text"] == "eventually"
