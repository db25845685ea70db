"""Bounded concurrent work for the singleton loops (submitter, poller)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from app.logs import get_logger

log = get_logger(__name__)


class BoundedWorkers:
    """At most ``limit`` jobs at once; a crash is logged, never silent; ``close`` cancels the rest."""

    def __init__(self, name: str, limit: int) -> None:
        self._name = name
        self._limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._running: set[asyncio.Task[None]] = set()

    @property
    def free(self) -> int:
        """Jobs that could start right now."""
        return self._limit - len(self._running)

    async def wait_for_free(self) -> None:
        """Return once at least one job could start (claim no more work than can run)."""
        await self._slots.acquire()
        self._slots.release()

    async def spawn(self, job: Callable[[], Awaitable[None]], label: str) -> None:
        """Start ``job()`` once a slot is free (waits while all are busy: backpressure)."""
        await self._slots.acquire()
        task = asyncio.create_task(self._guarded(job, label), name=f"{self._name}:{label}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _guarded(self, job: Callable[[], Awaitable[None]], label: str) -> None:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(f"{self._name}.job_failed", job=label)
        finally:
            self._slots.release()

    async def close(self) -> None:
        """Cancel every running job and wait for them to end."""
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)


async def next_wake(wake: asyncio.Queue[str], timeout: float) -> None:
    """Wait for a notification (or ``timeout``), then drop the others that piled up."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.get(), timeout)
    while not wake.empty():
        wake.get_nowait()
