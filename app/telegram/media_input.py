"""Files users send into the wizard (a photo for image-to-video, images to edit, a video or an
audio file): fetched from Telegram with ``getFile`` and streamed into our storage as an upload, so
KIE gets our signed URL. Telegram's file URL contains the bot token and never leaves the service.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Message

from app.storage.store import StorageError
from app.storage.uploads import StorageDisabled, UploadRejected
from app.telegram.context import BotContext

GET_FILE_LIMIT = 20 * 1024 * 1024  # what the Bot API lets a bot download
_TIMEOUT_S = 60
_CHUNK = 256 * 1024


class MediaRejected(Exception):
    """The file cannot be used: ``key``/``values`` name the message that says why."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


def _attachment(message: Message, kind: str) -> tuple[str, int | None, str | None, str | None] | None:
    """(file_id, size, declared type, file name) of what the message carries for ``kind``."""
    if kind == "image" and message.photo:
        photo = message.photo[-1]  # the largest size
        return photo.file_id, photo.file_size, "image/jpeg", None
    document = message.document
    if document is not None and (document.mime_type or "").startswith(f"{kind}/"):
        return document.file_id, document.file_size, document.mime_type, document.file_name
    media = message.video if kind == "video" else message.audio if kind == "audio" else None
    if media is not None:
        return media.file_id, media.file_size, media.mime_type, getattr(media, "file_name", None)
    if kind == "audio" and message.voice is not None:
        return message.voice.file_id, message.voice.file_size, message.voice.mime_type, None
    return None


async def store_media(message: Message, bot: Bot, ctx: BotContext, kind: str) -> str:
    """Our signed URL for the file in ``message``; raises MediaRejected."""
    found = _attachment(message, kind)
    if found is None:
        raise MediaRejected("wrong.media", field=kind, expected="")
    file_id, size, declared, filename = found
    if size is not None and size > GET_FILE_LIMIT:
        raise MediaRejected("wrong.too_large", size=round(size / 1024 / 1024, 1))
    try:
        file = await bot.get_file(file_id)
    except TelegramBadRequest as exc:
        # The message may not say the size (file_size is optional): then getFile is what refuses.
        if "file is too big" in exc.message:
            raise MediaRejected("wrong.too_large", size=f">{GET_FILE_LIMIT // (1024 * 1024)}") from exc
        raise
    if file.file_path is None:
        raise MediaRejected("wrong.upload", reason="Telegram gave no file")
    if file.file_size is not None and file.file_size > GET_FILE_LIMIT:
        raise MediaRejected("wrong.too_large", size=round(file.file_size / 1024 / 1024, 1))
    # Streamed through our own session: the URL (with the token) stays inside this process.
    url = bot.session.api.file_url(bot.token, file.file_path)
    chunks = bot.session.stream_content(url, timeout=_TIMEOUT_S, chunk_size=_CHUNK, raise_for_status=True)
    assert message.from_user is not None
    try:
        uploaded = await ctx.uploads.save(
            owner=f"telegram:{message.from_user.id}",
            chunks=chunks,
            declared_type=declared,
            filename=filename or file.file_path.rsplit("/", 1)[-1],
        )
    except UploadRejected as exc:
        raise MediaRejected("wrong.upload", reason=exc.message) from exc
    except (StorageDisabled, StorageError) as exc:
        raise MediaRejected("wrong.upload", reason=str(exc)) from exc
    return uploaded.url
