"""Streaming a result file from its source URL into a store: bounded memory (chunks), a size cap,
connect and read timeouts, http(s) only, size and sha256 computed on the way, and the content type
from the response (sniffed from the first bytes when missing or generic)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp

from app.storage.sniff import SNIFF_BYTES, content_type_of
from app.storage.store import Store, StoredObject

CHUNK_BYTES = 1024 * 1024


class SourceError(Exception):
    """The source could not give us the file; ``permanent`` when trying again cannot help."""

    def __init__(self, message: str, *, status: int | None = None, permanent: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = permanent

    @property
    def link_expired(self) -> bool:
        """The source refused or no longer has it (403, 404, 410): a fresh link may help."""
        return self.status in (403, 404, 410)


class TooLarge(SourceError):
    """The file is larger than the mirroring cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than the {limit} byte limit", permanent=True)


@dataclass(frozen=True)
class Copied:
    """A file copied into the store."""

    stored: StoredObject
    content_type: str


async def copy_url(
    session: aiohttp.ClientSession,
    url: str,
    store: Store,
    key_for: Callable[[str], str],
    *,
    max_bytes: int,
    timeout: aiohttp.ClientTimeout,
) -> Copied:
    """Stream ``url`` into ``store`` under ``key_for(content_type)``; raise SourceError or StorageError."""
    if not url.lower().startswith(("http://", "https://")):
        raise SourceError("only http(s) URLs are copied", permanent=True)
    try:
        async with session.get(url, timeout=timeout, allow_redirects=True) as response:
            if response.status != 200:
                permanent = 400 <= response.status < 500 and response.status not in (408, 429)
                raise SourceError(
                    f"the source answered HTTP {response.status}", status=response.status, permanent=permanent
                )
            if response.content_length is not None and response.content_length > max_bytes:
                raise TooLarge(max_bytes)
            chunks = response.content.iter_chunked(CHUNK_BYTES)
            head = await _first_chunk(chunks)
            content_type = content_type_of(response.headers.get("Content-Type"), head[:SNIFF_BYTES])
            stored = await store.put(
                key_for(content_type), _capped(head, chunks, max_bytes), content_type=content_type
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SourceError(f"downloading the source failed: {type(exc).__name__}") from exc
    return Copied(stored, content_type)


async def _first_chunk(chunks: AsyncIterator[bytes]) -> bytes:
    async for chunk in chunks:
        if chunk:
            return chunk
    return b""


async def _capped(head: bytes, rest: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    seen = len(head)
    if seen > limit:
        raise TooLarge(limit)
    if head:
        yield head
    async for chunk in rest:
        seen += len(chunk)
        if seen > limit:
            raise TooLarge(limit)  # the store abandons the partial object: nothing is kept
        yield chunk
