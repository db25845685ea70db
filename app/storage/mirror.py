"""Mirroring: every succeeded generation's results are copied into our own storage.

KIE's result URLs expire, so the leader's mirror worker (woken by the NOTIFY of each state move,
with a periodic sweep) streams every result into the store and records ``files`` in result order.
The generation's state never changes because of it: a storage failure after KIE succeeded leaves
the generation ``succeeded`` with KIE's URLs, its ``mirror.state`` ``pending`` with the error,
retried with capped, jittered backoff. A source that answers 403/404/410 first gets one fresh link
from KIE; one that is still gone, or larger than the cap, ends the copy as ``failed``.

``python -m app mirror`` runs the same copier outside leadership; claims with a lease keep the
two from copying one generation at once, and every write checks the claim.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from app.backoff import Backoff
from app.db import generation_files as queue
from app.db.connection import Conn
from app.db.database import Database, DatabaseUnavailable
from app.db.generations import EVENTS_CHANNEL
from app.db.notifications import Notifications
from app.kie.errors import KieError
from app.leader import Fence, LeaderTerm, write_transaction
from app.logs import get_logger
from app.random_ids import random_hex
from app.redaction import describe_error, redact_url
from app.storage.fetch import Copied, SourceError, TooLarge, copy_url
from app.storage.sniff import extension_of
from app.storage.store import StorageError, Store
from app.supervision import BoundedWorkers, next_wake

log = get_logger(__name__)

LEASE_S = 600.0  # longer than a 2 GiB copy takes at any sane speed; a dead copier's claim ends
BATCH = 16
_CONCURRENCY = 4
_MAX_SLEEP_S = 30.0
# Source trouble (timeouts, 5xx) is retried this many times before the copy is given up; storage
# trouble never gives up a copy: the source is fine and the store will be back.
SOURCE_ATTEMPTS = 8
_RETRY = Backoff(base=5.0, cap=3600.0)


class FreshLinks(Protocol):
    """KIE's download-url call: a fresh link for a file KIE made."""

    async def download_url(self, url: str) -> str:
        """A fresh link; raises KieError."""
        ...


@dataclass
class Summary:
    """What one pass did (``python -m app mirror`` prints it)."""

    claimed: int = 0
    ids: list[uuid.UUID] = field(default_factory=list)
    done: int = 0
    failed: int = 0
    retried: int = 0
    errors: list[str] = field(default_factory=list)


class Mirror:
    """Copies succeeded generations' results into the store."""

    def __init__(
        self,
        *,
        database: Database,
        store: Store | None,
        links: FreshLinks,
        notifications: Notifications | None,
        max_bytes: int,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        self._database = database
        self.store = store  # None: storage is disabled (STORAGE_URL=none)
        self._links = links
        self._notifications = notifications
        self._max_bytes = max_bytes
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout_s, sock_read=read_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the download session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Our own session: result hosts are not KIE and never get KIE's key; bytes as stored.
            self._session = aiohttp.ClientSession(auto_decompress=False)
        return self._session

    async def run(self, term: LeaderTerm) -> None:
        """The leader's loop: woken by state changes, with a sweep at least every 30 s."""
        assert self._notifications is not None
        wake = self._notifications.subscribe(EVENTS_CHANNEL)
        prefix = f"leader:{term.epoch}:"
        token = prefix + random_hex(6)
        try:
            while True:
                summary = await self.run_once(
                    token, batch_size=BATCH, fence=term.fenced, leader_prefix=prefix
                )
                if summary.claimed < BATCH:  # a full batch means more may be due: go on at once
                    await next_wake(wake, await self._sleep_for())
        finally:
            self._notifications.unsubscribe(EVENTS_CHANNEL, wake)

    async def _sleep_for(self) -> float:
        try:
            due = await queue.next_due(self._database.require_pool())
        except DatabaseUnavailable:
            return 1.0
        if due is None:
            return _MAX_SLEEP_S
        return max(0.05, min(_MAX_SLEEP_S, due.timestamp() - time.time()))

    async def run_once(
        self,
        token: str | None = None,
        *,
        batch_size: int,
        ignore_backoff: bool = False,
        exclude: list[uuid.UUID] | None = None,
        fence: Fence | None = None,
        leader_prefix: str | None = None,
    ) -> Summary:
        """Claim one batch and copy it, a few generations at once; what happened."""
        token = token or f"copier:{uuid.uuid4().hex[:12]}"
        jobs = await queue.claim(
            self._database.require_pool(),
            token,
            limit=batch_size,
            lease_s=LEASE_S,
            ignore_backoff=ignore_backoff,
            exclude=exclude,
            leader_prefix=leader_prefix,
        )
        summary = Summary(claimed=len(jobs), ids=[job.generation_id for job in jobs])
        # Downloads are bounded by the semaphore; recording a finished copy is not, so a download
        # slot never waits on the database.
        downloads = asyncio.Semaphore(_CONCURRENCY)
        workers = BoundedWorkers("mirror", max(1, len(jobs)))
        try:
            for job in jobs:
                await workers.spawn(
                    _bind(self._copy, job, token, summary, fence, downloads), str(job.generation_id)
                )
            await workers.drain()
        except asyncio.CancelledError:
            await workers.close()
            # Give back what was not finished, so the next copier need not wait for the lease.
            await asyncio.shield(self._release(summary.ids, token))
            raise
        return summary

    async def _release(self, ids: list[uuid.UUID], token: str) -> None:
        try:
            await queue.release(self._database.require_pool(), ids, token)
        except Exception as exc:  # the lease (or the next leader) ends the claims anyway
            log.warning("mirror.release_failed", error=describe_error(exc))

    async def _copy(
        self,
        job: queue.MirrorJob,
        token: str,
        summary: Summary,
        fence: Fence | None,
        downloads: asyncio.Semaphore,
    ) -> None:
        generation_id = job.generation_id
        if self.store is None:
            async with self._transaction(fence) as conn:
                await queue.give_up(conn, generation_id, token, "disabled", None)
            return
        try:
            async with downloads:
                files = [
                    await self._copy_one(generation_id, index, url)
                    for index, url in enumerate(job.result_urls, 1)
                ]
        except StorageError as exc:
            await self._retry(fence, job, token, f"storage: {exc}", summary, source_trouble=False)
            return
        except TooLarge as exc:
            await self._fail(fence, job, token, str(exc), summary)
            return
        except SourceError as exc:
            if exc.permanent or job.attempts >= SOURCE_ATTEMPTS:
                await self._fail(fence, job, token, str(exc), summary)
            else:
                await self._retry(fence, job, token, str(exc), summary, source_trouble=True)
            return
        async with self._transaction(fence) as conn:
            recorded = await queue.record_files(conn, generation_id, token, files)
        if recorded:
            summary.done += 1
            total = sum(int(entry["bytes"]) for entry in files)
            log.info("mirror.done", id=str(generation_id), files=len(files), bytes=total)

    async def _copy_one(self, generation_id: uuid.UUID, index: int, url: str) -> dict[str, Any]:
        def key_for(content_type: str) -> str:
            return f"{generation_id}/{file_name(index, content_type)}"

        try:
            copied = await self._fetch(url, key_for)
        except SourceError as exc:
            if not exc.link_expired:
                raise
            copied = await self._fetch(await self._fresh_link(generation_id, url, exc), key_for)
        stored = copied.stored
        return {
            "name": stored.key.rsplit("/", 1)[-1],
            "content_type": copied.content_type,
            "bytes": stored.bytes,
            "sha256": stored.sha256,
        }

    async def _fresh_link(self, generation_id: uuid.UUID, url: str, refused: SourceError) -> str:
        # KIE documents that task URLs may expire before the files do: ask for a fresh link, once.
        try:
            fresh = await self._links.download_url(url)
        except KieError as exc:
            raise SourceError(
                f"{refused}; KIE gave no fresh link ({exc})",
                status=refused.status,
                permanent=refused.status in (404, 410),
            ) from exc
        log.info("mirror.fresh_link", id=str(generation_id), source=redact_url(url))
        return fresh

    async def _fetch(self, url: str, key_for: Callable[[str], str]) -> Copied:
        assert self.store is not None
        return await copy_url(
            self._http(), url, self.store, key_for, max_bytes=self._max_bytes, timeout=self._timeout
        )

    async def _retry(
        self,
        fence: Fence | None,
        job: queue.MirrorJob,
        token: str,
        error: str,
        summary: Summary,
        *,
        source_trouble: bool,
    ) -> None:
        # Storage trouble keeps retrying forever, so its delay stops growing at a sensible point.
        attempts = job.attempts if source_trouble else min(job.attempts, 8)
        delay = _RETRY.delay_for(attempts)
        async with self._transaction(fence) as conn:
            await queue.retry_later(conn, job.generation_id, token, error, delay)
        summary.retried += 1
        summary.errors.append(f"{job.generation_id}: {error}")
        log.warning("mirror.retry_later", id=str(job.generation_id), error=error, retry_in_s=round(delay, 1))

    async def _fail(
        self, fence: Fence | None, job: queue.MirrorJob, token: str, error: str, summary: Summary
    ) -> None:
        async with self._transaction(fence) as conn:
            await queue.give_up(conn, job.generation_id, token, "failed", error)
        summary.failed += 1
        summary.errors.append(f"{job.generation_id}: {error}")
        log.warning("mirror.failed", id=str(job.generation_id), error=error)

    def _transaction(self, fence: Fence | None) -> AbstractAsyncContextManager[Conn]:
        """Fenced by the leader epoch on the leader; a plain transaction for ``python -m app mirror``.

        Either way the write also checks the claim token, so a copier that lost its claim writes
        nothing.
        """
        return write_transaction(fence, self._database.require_pool)


def file_name(index: int, content_type: str) -> str:
    """``result-1.png``: the name of the ``index``-th result, the same on every retry."""
    return f"result-{index}.{extension_of(content_type)}"


def _bind(
    copy: Callable[[queue.MirrorJob, str, Summary, Fence | None, asyncio.Semaphore], Awaitable[None]],
    job: queue.MirrorJob,
    token: str,
    summary: Summary,
    fence: Fence | None,
    downloads: asyncio.Semaphore,
) -> Callable[[], Awaitable[None]]:
    return lambda: copy(job, token, summary, fence, downloads)
