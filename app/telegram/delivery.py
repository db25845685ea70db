"""Results to chats, by the leader: the status message follows its generation, and when the
generation ends its result is delivered once from the ``telegram_deliveries`` outbox.

Policy for an outcome we cannot know (a timeout, a dropped connection or a 5xx after the request
went out): a single result is delivered by *editing the status message* into the photo, video or
audio, so sending again edits the same message and cannot make a second copy; several images go
as a media group (new messages), which is sent again after an unknown outcome: at least once, so
a second copy appears only when Telegram had accepted the lost attempt. Anything that surely did
not arrive (429 after its ``retry_after``, a refused connection, a 400 a fallback fixes) is simply
tried again; a chat that blocked the bot ends the delivery as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import orjson
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    InlineKeyboardMarkup,
    InputFile,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
)

from app.backoff import Backoff
from app.db import telegram_deliveries as outbox
from app.db.connection import Conn
from app.db.database import Database
from app.db.generations import EVENTS_CHANNEL
from app.db.notifications import Notifications
from app.generations.model import Generation
from app.generations.service import GenerationService
from app.leader import Fence, LeaderTerm, write_transaction
from app.logs import get_logger
from app.metrics import TELEGRAM_DELIVERIES, TELEGRAM_RATE_LIMITED
from app.random_ids import random_hex
from app.redaction import describe_error
from app.states import State
from app.storage.signing import FileLinks
from app.storage.store import Store
from app.telegram.i18n import t
from app.telegram.keyboards import result_keyboard
from app.telegram.limits import SendLimits

log = get_logger(__name__)

_LEASE_S = 300.0
_BATCH = 8
_MIRROR_WAIT_S = 20.0  # how long a success waits for our copies before KIE's links are sent
_MAX_ATTEMPTS = 6
_IDLE_S = 5.0
_STATUS_EVERY_S = 1.0
_RETRY = Backoff(base=2.0, cap=300.0)
# Telegram's limits: uploads of photos up to 10 MB and other files up to 50 MB.
_UPLOAD_LIMIT = {"photo": 10 * 1024 * 1024, "other": 50 * 1024 * 1024}

Media = InputMediaPhoto | InputMediaVideo | InputMediaAudio | InputMediaDocument


class StoredInputFile(InputFile):
    """One of our stored files, streamed to Telegram (never read whole into memory)."""

    def __init__(self, store: Store, key: str, filename: str) -> None:
        super().__init__(filename=filename)
        self._store = store
        self._key = key

    async def read(self, bot: Bot) -> AsyncGenerator[bytes, None]:
        """The file's bytes, chunk by chunk."""
        reader = await self._store.open(self._key)
        try:
            async for chunk in reader.chunks:
                yield chunk
        finally:
            await reader.aclose()


def kind_of_result(content_type: str | None, url: str, output: str) -> str:
    """``photo``, ``video``, ``audio`` or ``document`` for a result file."""
    major = (content_type or "").split("/", 1)[0]
    if major == "image":
        return "photo"
    if major in ("video", "audio"):
        return major
    extension = url.split("?", 1)[0].rsplit(".", 1)[-1].lower()
    if extension in ("png", "jpg", "jpeg", "webp"):
        return "photo"
    if extension in ("mp4", "mov", "webm"):
        return "video"
    if extension in ("mp3", "wav", "m4a", "ogg"):
        return "audio"
    return {"image": "photo", "video": "video", "audio": "audio"}.get(output, "document")


class ResultDelivery:
    """The leader's Telegram sender: status edits and result deliveries."""

    def __init__(
        self,
        *,
        bot: Bot,
        database: Database,
        generations: GenerationService,
        notifications: Notifications,
        store: Store | None,
        links: FileLinks,
    ) -> None:
        self._bot = bot
        self._database = database
        self._generations = generations
        self._notifications = notifications
        self._store = store
        self._links = links
        self._limits = SendLimits()
        self._status_due: dict[uuid.UUID, float] = {}
        self._last_edit: dict[uuid.UUID, float] = {}
        self._fence: Fence | None = None

    async def run(self, term: LeaderTerm) -> None:
        """Forever (this term): follow generation events and deliver what has ended."""
        events = self._notifications.subscribe(EVENTS_CHANNEL)
        prefix = f"leader:{term.epoch}:"
        token = prefix + random_hex(6)
        self._fence = term.fenced
        try:
            while True:
                delivered = await self.run_once(token, leader_prefix=prefix)
                await self._edit_statuses()
                if delivered:
                    continue
                await self._wait(events)
        finally:
            self._notifications.unsubscribe(EVENTS_CHANNEL, events)

    async def _wait(self, events: asyncio.Queue[str]) -> None:
        timeout = _IDLE_S
        if self._status_due:
            timeout = max(0.05, min(self._status_due.values()) - time.monotonic())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                payload = await events.get()
                self._note(payload)
                while not events.empty():
                    self._note(events.get_nowait())

    def _note(self, payload: str) -> None:
        try:
            generation_id = uuid.UUID(str(orjson.loads(payload)["id"]))
        except (ValueError, KeyError, TypeError):
            return
        # At most one edit a second per status message: a change soon after an edit waits.
        last = self._last_edit.get(generation_id, 0.0)
        self._status_due.setdefault(generation_id, max(time.monotonic(), last + _STATUS_EVERY_S))

    async def run_once(self, token: str, *, leader_prefix: str | None = None) -> int:
        """Claim and deliver one batch; how many were claimed."""
        async with self._write() as conn:
            claimed = await outbox.claim(
                conn,
                token,
                lease_s=_LEASE_S,
                limit=_BATCH,
                mirror_wait_s=_MIRROR_WAIT_S,
                leader_prefix=leader_prefix,
            )
        for delivery in claimed:
            await self._deliver(delivery, token)
        return len(claimed)

    # --- status messages ---------------------------------------------------------------------

    async def _edit_statuses(self) -> None:
        now = time.monotonic()
        due = [gid for gid, at in self._status_due.items() if at <= now]
        for generation_id in due:
            self._status_due.pop(generation_id, None)
            try:
                await self._edit_status(generation_id)
            except Exception as exc:  # a status edit is best effort; the result delivery is not
                log.warning("telegram.status_edit_failed", id=str(generation_id), error=describe_error(exc))

    async def _edit_status(self, generation_id: uuid.UUID) -> None:
        pool = self._database.require_pool()
        waiting = await outbox.waiting_for(pool, generation_id)
        if not waiting:
            return
        generation = await self._generations.get(generation_id)
        if generation is None or generation.terminal:
            return  # the delivery itself replaces the status
        for delivery in waiting:
            text = status_text(generation, delivery.lang)
            if delivery.status_message_id is None or delivery.status_text == text:
                continue
            await self._limits.wait(delivery.chat_id)
            try:
                await self._bot.edit_message_text(
                    text=text, chat_id=delivery.chat_id, message_id=delivery.status_message_id
                )
            except TelegramBadRequest as exc:
                if "message is not modified" not in exc.message:
                    raise
            except TelegramRetryAfter as exc:
                TELEGRAM_RATE_LIMITED.inc()
                self._limits.hold(delivery.chat_id, exc.retry_after)
                self._status_due[generation_id] = time.monotonic() + exc.retry_after
                continue
            await outbox.status_edited(pool, generation_id, delivery.chat_id, text)
        self._last_edit[generation_id] = time.monotonic()
        if len(self._last_edit) > 10_000:
            self._last_edit.clear()

    # --- results -------------------------------------------------------------------------------

    def _write(self) -> contextlib.AbstractAsyncContextManager[Conn]:
        """A transaction fenced by the leader's epoch (a plain one outside a term, in tests)."""
        return write_transaction(self._fence, self._database.require_pool)

    async def _deliver(self, delivery: outbox.Delivery, token: str) -> None:
        generation = await self._generations.get(delivery.generation_id)
        if generation is None:
            async with self._write() as conn:
                await outbox.mark_failed(conn, delivery, token, "the generation is gone")
            return
        if delivery.outcome == "unknown":
            # The last sender died mid-send: what it sent is unknown (see the policy above).
            log.warning("telegram.delivery_unknown_outcome", id=str(generation.id), attempt=delivery.attempts)
        try:
            message_ids, outcome = await self._send(delivery, generation)
        except TelegramRetryAfter as exc:
            TELEGRAM_RATE_LIMITED.inc()
            self._limits.hold(delivery.chat_id, exc.retry_after)
            async with self._write() as conn:
                await outbox.retry_later(conn, delivery, token, describe_error(exc), exc.retry_after)
            TELEGRAM_DELIVERIES.labels("rate_limited").inc()
            return
        except TelegramForbiddenError as exc:
            async with self._write() as conn:
                await outbox.mark_failed(conn, delivery, token, describe_error(exc))
            TELEGRAM_DELIVERIES.labels("forbidden").inc()
            log.warning("telegram.delivery_forbidden", id=str(generation.id), chat_id=delivery.chat_id)
            return
        except Exception as exc:
            # Telegram's 5xx, a timeout, a dropped connection, a 400 no fallback fixed, or a bug of
            # ours: tried again later (see the policy above), and given up after a few attempts.
            error = describe_error(exc)
            if not isinstance(exc, (TelegramNetworkError, TelegramServerError, TelegramBadRequest, OSError)):
                log.exception("telegram.delivery_error", id=str(generation.id))
            if delivery.attempts >= _MAX_ATTEMPTS:
                async with self._write() as conn:
                    await outbox.mark_failed(conn, delivery, token, error)
                TELEGRAM_DELIVERIES.labels("failed").inc()
                log.error("telegram.delivery_failed", id=str(generation.id), error=error)
                return
            delay = _RETRY.delay_for(delivery.attempts)
            async with self._write() as conn:
                await outbox.retry_later(conn, delivery, token, error, delay)
            TELEGRAM_DELIVERIES.labels("retried").inc()
            log.warning(
                "telegram.delivery_retry", id=str(generation.id), error=error, retry_in_s=round(delay, 1)
            )
            return
        async with self._write() as conn:
            await outbox.mark_delivered(conn, delivery, token, message_ids, outcome)
        TELEGRAM_DELIVERIES.labels(outcome).inc()
        log.info("telegram.delivered", id=str(generation.id), chat_id=delivery.chat_id, outcome=outcome)

    async def _send(self, delivery: outbox.Delivery, generation: Generation) -> tuple[list[int], str]:
        chat_id = delivery.chat_id
        if generation.state is not State.SUCCEEDED:
            return await self._say(delivery, status_text(generation, delivery.lang)), "notified"
        results = self._results(generation)
        lang = delivery.lang
        caption = t(lang, "status.done", model=generation.model)
        buttons = result_keyboard(lang, generation.id)
        if not results:
            # A text result (a transcript, say) is the message itself.
            text = _result_text(generation.result_object)
            return await self._say(delivery, f"{caption}\n\n{text}" if text else caption, buttons), "notified"
        if len(results) > 1 and all(kind == "photo" and link is None for kind, _, link in results):
            await self._limits.wait(chat_id)
            group = [
                InputMediaPhoto(media=media, caption=caption if index == 0 else None)
                for index, (_, media, _) in enumerate(results[:10])
            ]
            sent = await self._bot.send_media_group(chat_id, media=group)  # type: ignore[arg-type]
            await self._say(delivery, caption, buttons)  # an album takes no buttons: its status does
            return [m.message_id for m in sent], "group"
        ids: list[int] = []
        for index, (kind, media, link) in enumerate(results):
            if link is not None:
                ids += await self._say(delivery, t(lang, "result.link", model=generation.model, url=link))
                continue
            item = _input_media(kind, media, caption if index == 0 else None)
            try:
                markup = buttons if index == 0 else None
                if index == 0 and delivery.status_message_id is not None:
                    ids.append(await self._edit_into(delivery, item, markup))
                else:
                    await self._limits.wait(chat_id)
                    message = await send_media(self._bot, chat_id, kind, media, item.caption, markup)
                    ids.append(message.message_id)
            except TelegramBadRequest as exc:
                # Telegram could not fetch or take a link (too large for it, or gone): the link
                # itself, in words, is the fallback. Files we upload never take this path.
                if not isinstance(media, str) or "message is not modified" in exc.message:
                    raise
                ids += await self._say(delivery, t(lang, "result.link", model=generation.model, url=media))
        return ids, "edited" if delivery.status_message_id is not None else "sent"

    def _results(self, generation: Generation) -> list[tuple[str, Any, str | None]]:
        return result_media(generation, self._store, self._links, self._output(generation))

    def _output(self, generation: Generation) -> str:
        try:
            return self._generations.catalog.get(generation.model).output
        except LookupError:
            return ""

    async def _edit_into(
        self, delivery: outbox.Delivery, media: Media, markup: InlineKeyboardMarkup | None
    ) -> int:
        assert delivery.status_message_id is not None
        await self._limits.wait(delivery.chat_id)
        try:
            await self._bot.edit_message_media(
                media=media,
                chat_id=delivery.chat_id,
                message_id=delivery.status_message_id,
                reply_markup=markup,
            )
        except TelegramBadRequest as exc:
            if "message is not modified" in exc.message:
                return delivery.status_message_id  # an earlier attempt did it
            if "message to edit not found" not in exc.message and "can't be edited" not in exc.message:
                raise
            # The status message is gone (deleted by the user): a new message instead.
            message = await send_media(
                self._bot, delivery.chat_id, _kind(media), media.media, media.caption, markup
            )
            return int(message.message_id)
        return delivery.status_message_id

    async def _say(
        self, delivery: outbox.Delivery, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> list[int]:
        await self._limits.wait(delivery.chat_id)
        if delivery.status_message_id is not None:
            try:
                await self._bot.edit_message_text(
                    text=text,
                    chat_id=delivery.chat_id,
                    message_id=delivery.status_message_id,
                    reply_markup=markup,
                )
                return [delivery.status_message_id]
            except TelegramBadRequest as exc:
                if "message is not modified" in exc.message:
                    return [delivery.status_message_id]
                if "message to edit not found" not in exc.message:
                    raise
        message = await self._bot.send_message(delivery.chat_id, text, reply_markup=markup)
        return [message.message_id]


def result_media(
    generation: Generation, store: Store | None, links: FileLinks, output: str
) -> list[tuple[str, Any, str | None]]:
    """(kind, what to send, or our signed link when it is too large to upload) per result, in
    order: our copies when they exist (streamed from the store), else KIE's links."""
    files = list(generation.files or [])
    if not files or store is None:
        return [(kind_of_result(None, url, output), url, None) for url in generation.result_urls or []]
    results: list[tuple[str, Any, str | None]] = []
    for entry in files:
        name = str(entry["name"])
        kind = kind_of_result(str(entry.get("content_type") or ""), name, output)
        if int(entry.get("bytes") or 0) > _UPLOAD_LIMIT["photo" if kind == "photo" else "other"]:
            results.append((kind, None, links.url(str(generation.id), name)))
        else:
            results.append((kind, StoredInputFile(store, f"{generation.id}/{name}", name), None))
    return results


def _result_text(result: Any) -> str | None:
    """The text of a result that is text (e.g. speech to text's ``{"text": ...}``), cut to fit."""
    if isinstance(result, dict):
        result = result.get("text") or result.get("transcript")
    return str(result)[:3500] if isinstance(result, str) and result.strip() else None


def status_text(generation: Generation, lang: str = "en") -> str:
    """What the status message says for the generation's current state, in ``lang``."""
    model = generation.model
    state = generation.state
    if state is State.RUNNING and generation.progress:
        percent = round(float(generation.progress) * 100)
        return t(lang, "status.running_progress", model=model, percent=percent)
    if state is State.FAILED:
        return t(lang, "status.failed", model=model, reason=generation.error or "KIE reported a failure.")
    return t(lang, f"status.{state.value}" if state is not State.SUCCEEDED else "status.done", model=model)


def _input_media(kind: str, media: Any, caption: str | None) -> Media:
    if kind == "photo":
        return InputMediaPhoto(media=media, caption=caption)
    if kind == "video":
        return InputMediaVideo(media=media, caption=caption)
    if kind == "audio":
        return InputMediaAudio(media=media, caption=caption)
    return InputMediaDocument(media=media, caption=caption)


def _kind(media: Media) -> str:
    if isinstance(media, InputMediaPhoto):
        return "photo"
    if isinstance(media, InputMediaVideo):
        return "video"
    if isinstance(media, InputMediaAudio):
        return "audio"
    return "document"


async def send_media(
    bot: Bot,
    chat_id: int,
    kind: str,
    media: Any,
    caption: str | None,
    markup: InlineKeyboardMarkup | None = None,
) -> Any:
    """Send one result as a new message of its kind."""
    if kind == "photo":
        return await bot.send_photo(chat_id, media, caption=caption, reply_markup=markup)
    if kind == "video":
        return await bot.send_video(chat_id, media, caption=caption, reply_markup=markup)
    if kind == "audio":
        return await bot.send_audio(chat_id, media, caption=caption, reply_markup=markup)
    return await bot.send_document(chat_id, media, caption=caption, reply_markup=markup)
