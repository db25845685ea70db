"""Supervised background work: a crash is logged and the task restarted with backoff; bounded
concurrent jobs for the singleton loops (submitter, poller, and later mirroring and delivery)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from app.backoff import Backoff
from app.logs import get_logger

log = get_logger(__name__)

# A task that ran this long before failing is considered healthy again: its backoff restarts.
_HEALTHY_AFTER_S = 30.0


async def supervise(
    name: str, factory: Callable[[], Awaitable[None]], backoff: Backoff | None = None
) -> None:
    """Run ``factory()`` forever: restart it after a crash or an unexpected return.

    Only cancellation stops it, which is how its owner ends it.
    """
    backoff = backoff or Backoff(base=0.2, cap=10.0)
    while True:
        started = time.monotonic()
        try:
            await factory()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if time.monotonic() - started > _HEALTHY_AFTER_S:
                backoff.reset()
            delay = backoff.next_delay()
            log.exception("task.crashed", task=name, error=repr(exc), restart_in_s=round(delay, 2))
        else:
            delay = backoff.next_delay()
            log.warning("task.returned", task=name, restart_in_s=round(delay, 2))
        await asyncio.sleep(delay)


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

    async def drain(self) -> None:
        """Wait for every running job to end (none is cancelled)."""
        await asyncio.gather(*self._running, return_exceptions=True)

    async def close(self) -> None:
        """Cancel every running job and wait for them to end."""
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)


async def next_wake(wake: asyncio.Queue[str], timeout: float) -> None:
    """Wait for a notification (or ``timeout``), then drop the others that piled up."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await wake.get()
    while not wake.empty():
        wake.get_nowait()
