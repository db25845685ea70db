"""Where result files and uploads are kept: one small protocol, two backends (local disk, S3).

Objects are written from a stream and read as a stream, never held whole in memory. A write is
atomic: readers see the whole object or none of it (local: a temporary file, fsynced, then
renamed; S3: one PUT, or a multipart upload completed at the end). Keys are deterministic
(``<generation id>/<name>``), so a retried or doubled copy overwrites the same bytes harmlessly.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol


class StorageError(Exception):
    """The store failed (unreachable, full, refused); the operation may work later."""


class ObjectMissing(StorageError):
    """No object has this key."""


@dataclass(frozen=True)
class StoredObject:
    """What a completed write stored."""

    key: str
    bytes: int
    sha256: str
    content_type: str


@dataclass
class ObjectReader:
    """An object being read: its size, type and (a range of) its bytes as a stream."""

    size: int  # the whole object's size
    content_type: str
    chunks: AsyncIterator[bytes]
    start: int = 0  # the first byte this reader yields
    length: int = field(default=0)  # how many bytes it yields

    async def aclose(self) -> None:
        """Stop reading (releases the file or the connection)."""
        close = getattr(self.chunks, "aclose", None)
        if close is not None:
            await close()


class Store(Protocol):
    """A place to keep objects by key."""

    kind: str  # "local" or "s3"

    async def put(self, key: str, chunks: AsyncIterator[bytes], *, content_type: str) -> StoredObject:
        """Write the stream under ``key`` (atomically, replacing any object there)."""

    async def open(self, key: str, *, start: int = 0, end: int | None = None) -> ObjectReader:
        """Read the object at ``key`` (bytes ``start..end`` inclusive); ObjectMissing if absent."""

    async def exists(self, key: str) -> bool:
        """True when an object has ``key``."""

    async def delete(self, key: str) -> None:
        """Remove the object at ``key`` (nothing happens if there is none)."""

    async def probe(self) -> None:
        """A real round trip that proves the store works now; raises StorageError otherwise."""

    async def close(self) -> None:
        """Release connections."""


class Digest:
    """Size and sha256 of a stream, computed as it passes."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.bytes = 0

    def update(self, chunk: bytes) -> None:
        """Account for one chunk."""
        self._hash.update(chunk)
        self.bytes += len(chunk)

    @property
    def sha256(self) -> str:
        """The hex digest of everything so far."""
        return self._hash.hexdigest()
