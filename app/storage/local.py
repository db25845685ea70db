"""The local-disk store: objects are files under one directory (``DATA_DIR/files`` by default).

A write goes to a temporary file beside its target, is fsynced, renamed over the target and the
directory fsynced, so a reader never sees half a file and a crash leaves none behind under the
real name. The disk is touched in worker threads (aiofiles), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiofiles
import aiofiles.os

from app.storage.store import Digest, ObjectMissing, ObjectReader, StorageError, StoredObject

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}(/[A-Za-z0-9][A-Za-z0-9._-]{0,200}){0,3}$")
_READ_CHUNK = 256 * 1024


class LocalStore:
    """Objects as files under ``root``."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.match(key) or ".." in key:
            raise ValueError(f"not a storage key: {key!r}")
        return self.root / key

    async def put(self, key: str, chunks: AsyncIterator[bytes], *, content_type: str) -> StoredObject:
        """Write ``chunks`` to ``key``: temporary file, fsync, rename, directory fsync.

        Each chunk is hashed and written in a worker thread while the next one is received
        (hashlib and os.write release the GIL), so neither the hash nor the disk holds up the
        event loop or the download; at most one chunk is in flight, so memory stays bounded.
        """
        target = self._path(key)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
        digest = Digest()
        try:
            async with _disk():
                fd = await asyncio.to_thread(_create, temporary)
            writing: asyncio.Future[None] | None = None
            try:
                # Errors of the source (``chunks``) pass through as they are; only the disk's
                # own failures are storage errors.
                async for chunk in chunks:
                    if not chunk:
                        continue
                    if writing is not None:
                        async with _disk():
                            await writing
                    writing = asyncio.ensure_future(asyncio.to_thread(_write_hashed, fd, digest, chunk))
                async with _disk():
                    if writing is not None:
                        await writing
                    await asyncio.to_thread(os.fsync, fd)
            finally:
                _close_after(writing, fd)
            async with _disk():
                await aiofiles.os.replace(temporary, target)
                await asyncio.to_thread(_fsync_directory, target.parent)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(_remove, temporary))
            raise
        return StoredObject(key, digest.bytes, digest.sha256, content_type)

    async def open(self, key: str, *, start: int = 0, end: int | None = None) -> ObjectReader:
        """The object at ``key`` as a stream of ``start..end`` (inclusive)."""
        path = self._path(key)
        try:
            size = (await aiofiles.os.stat(path)).st_size
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        except OSError as exc:
            raise StorageError(f"local storage: {exc.strerror or exc}") from exc
        last = size - 1 if end is None else min(end, size - 1)
        length = max(0, last - start + 1)
        # The content type is the caller's to know (it is recorded with the file in the database).
        return ObjectReader(size, "application/octet-stream", _read(path, start, length), start, length)

    async def exists(self, key: str) -> bool:
        """True when the file is there."""
        return await aiofiles.os.path.exists(self._path(key))

    async def delete(self, key: str) -> None:
        """Remove the file."""
        await asyncio.to_thread(self._path(key).unlink, True)

    async def probe(self) -> None:
        """Create, fsync and remove a small file under the root."""
        try:
            await asyncio.to_thread(_probe, self.root)
        except OSError as exc:
            raise StorageError(f"local storage: {exc.strerror or exc}") from exc

    async def close(self) -> None:
        """Nothing to release."""


@contextlib.asynccontextmanager
async def _disk() -> AsyncIterator[None]:
    """Turn the disk's OSError into StorageError (full, read-only, not a directory...)."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"local storage: {exc.strerror or exc}") from exc


def _create(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def _close_after(writing: asyncio.Future[None] | None, fd: int) -> None:
    """Close the file now, or, when a write is still running in its thread (which cannot be
    stopped), as soon as it ends; its outcome is taken so it is never reported as unretrieved."""

    def close(done: asyncio.Future[None] | None) -> None:
        if done is not None and not done.cancelled():
            done.exception()
        os.close(fd)

    if writing is None or writing.done():
        close(writing)
    else:
        writing.add_done_callback(close)


def _write_hashed(fd: int, digest: Digest, chunk: bytes) -> None:
    digest.update(chunk)
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view) :]


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


async def _read(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    async with aiofiles.open(path, "rb") as handle:
        await handle.seek(start)
        left = length
        while left > 0:
            chunk = await handle.read(min(_READ_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _probe(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    path = root / f".probe-{uuid.uuid4().hex}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"ok")
        os.fsync(fd)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
