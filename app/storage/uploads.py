"""Uploads: files people give us as inputs (a photo for image-to-video, images to edit), kept in
our storage and handed to KIE as a signed link to us.

Telegram's file URLs contain the bot token and must never leave the service, and KIE needs a
public URL: an upload is that URL. Images, video and audio only, at most 30 MB, streamed to the
store (never held whole in memory) with its size and sha256 computed on the way.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote

from app.db import uploads as uploads_db
from app.db.database import Database
from app.storage.signing import FileLinks
from app.storage.sniff import GENERIC_TYPES, SNIFF_BYTES, extension_of, kind_of, sniff
from app.storage.store import Store

MAX_UPLOAD_BYTES = 30 * 1024 * 1024
_KINDS = ("image", "video", "audio")
_MAX_NAME = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")  # ".." is never part of a storage key


class UploadRejected(Exception):
    """The upload is not acceptable; ``status`` is 413 (too large) or 422 (not a media file)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class StorageDisabled(Exception):
    """``STORAGE_URL=none``: there is nowhere to keep an upload."""


@dataclass(frozen=True)
class Uploaded:
    """A stored upload and its signed link."""

    upload: uploads_db.Upload
    url: str


class Uploads:
    """Stores uploads and records them."""

    def __init__(self, database: Database, store: Store | None, links: FileLinks) -> None:
        self._database = database
        self._store = store
        self._links = links

    async def save(
        self, *, owner: str, chunks: AsyncIterator[bytes], declared_type: str | None, filename: str | None
    ) -> Uploaded:
        """Check, store and record one upload; raises UploadRejected, StorageDisabled or StorageError."""
        if self._store is None:
            raise StorageDisabled("file storage is disabled (STORAGE_URL=none)")
        head = b""
        async for chunk in chunks:
            head += chunk
            if len(head) >= SNIFF_BYTES:
                break
        content_type = _content_type(declared_type, head[:SNIFF_BYTES])
        upload_id = uuid.uuid4()
        name = _name(filename, content_type)
        stored = await self._store.put(
            f"{upload_id}/{name}", _capped(head, chunks), content_type=content_type
        )
        if stored.bytes == 0:
            await self._store.delete(stored.key)
            raise UploadRejected(422, "the upload is empty")
        upload = await uploads_db.insert(
            self._database.require_pool(),
            upload_id=upload_id,
            owner=owner,
            name=name,
            content_type=content_type,
            size=stored.bytes,
            sha256=stored.sha256,
        )
        return Uploaded(upload, self._links.url(str(upload_id), name))


def _content_type(declared: str | None, head: bytes) -> str:
    """The upload's type: the declared one when it is a media type the bytes agree with."""
    if not head:
        raise UploadRejected(422, "the upload is empty")
    declared_type = (declared or "").split(";", 1)[0].strip().lower()
    sniffed = sniff(head)
    if declared_type in GENERIC_TYPES:
        if sniffed is None:
            raise UploadRejected(422, "the upload is not an image, a video or an audio file we recognise")
        declared_type = sniffed
    if kind_of(declared_type) not in _KINDS:
        raise UploadRejected(422, f"uploads must be images, video or audio, not {declared_type}")
    # Only content we recognise: an upload is served from our own domain, and bytes that are not
    # what they claim (an SVG with a script, HTML called image/png) must never be.
    if sniffed is None:
        raise UploadRejected(422, "the upload is not an image, a video or an audio file we recognise")
    if kind_of(sniffed) != kind_of(declared_type):
        raise UploadRejected(422, f"the upload says it is {declared_type} but its content is {sniffed}")
    return declared_type


def _name(filename: str | None, content_type: str) -> str:
    """A safe name: the client's file name cleaned up, or ``upload.<ext>``."""
    # aiohttp and some other clients percent-encode the name in Content-Disposition.
    given = unquote(filename or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    base = _DOTS.sub(".", _UNSAFE.sub("-", given)).strip("-.")
    if len(base) > _MAX_NAME:
        stem, dot, extension = base.rpartition(".")
        keep = dot + extension if stem and len(extension) <= 10 else ""
        base = base[: _MAX_NAME - len(keep)].rstrip("-.") + keep
    if not base or not base[0].isalnum():
        return f"upload.{extension_of(content_type)}"
    return base


async def _capped(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    seen = len(head)
    if seen > MAX_UPLOAD_BYTES:
        raise UploadRejected(413, f"uploads are at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    if head:
        yield head
    async for chunk in rest:
        seen += len(chunk)
        if seen > MAX_UPLOAD_BYTES:
            # Raised inside the store's write: the partial object is abandoned, never kept.
            raise UploadRejected(413, f"uploads are at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
        yield chunk
