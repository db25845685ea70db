"""Group commit: many concurrent writers share one INSERT and one commit.

Each caller submits one item and awaits its own result. A single writer task
takes everything that queued up while the previous batch was being written and
writes it in one statement, so the cost of a commit is shared by all of them
with no added delay when the load is light (a batch of one goes out at once).

The write function receives the batch and a ``resolve`` callback: it calls
``resolve(results)`` as soon as the batch is durable (the callers go on at
once) and may then do quick follow-up work before the next batch starts.

Waiting is bounded by the writer, not by each caller: an item that waited longer
than ``timeout`` for its batch to start fails with ``TimeoutError`` without being
written, and each write is cut off after ``timeout``. A caller therefore waits
at most twice ``timeout``, and the hot path pays for one timer per batch instead
of one per item.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from app.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")

Resolve = Callable[[list[R]], None]


class GroupCommitter(Generic[T, R]):
    """Batches ``submit`` calls into calls of ``write(items, resolve)``."""

    def __init__(
        self,
        name: str,
        write: Callable[[list[T], Resolve[R]], Awaitable[None]],
        *,
        timeout: float,
        max_batch: int = 256,
        writers: int = 2,
    ) -> None:
        self._name = name
        self._write = write
        self._timeout = timeout
        self._max_batch = max_batch
        self._writers = writers
        self._pending: list[tuple[T, asyncio.Future[R], float]] = []
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        """True while the writer tasks are alive."""
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    def start(self) -> None:
        """Start the writer tasks."""
        if not self.running:
            for task in self._tasks:
                task.cancel()
            self._tasks = [
                asyncio.create_task(self._run(), name=f"group_commit.{self._name}.{n}")
                for n in range(self._writers)
            ]

    async def stop(self) -> None:
        """Stop the writers; anything still queued fails with ConnectionError."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pending, self._pending = self._pending, []
        _fail([future for _item, future, _at in pending], ConnectionError("writer stopped"))

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue ``item``; the returned future resolves once its batch is written (bounded, see above).

        A timed-out write may still have committed; callers make that harmless (the inbox's
        unique intake id).
        """
        if not self.running:
            raise ConnectionError(f"{self._name} writer is not running")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future, time.monotonic()))
        self._ready.set()
        return future

    async def _run(self) -> None:
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                while self._pending:
                    batch = self._pending[: self._max_batch]
                    del self._pending[: self._max_batch]
                    await self._write_batch(self._fresh(batch))
        finally:
            pending, self._pending = self._pending, []
            _fail([future for _item, future, _at in pending], ConnectionError("writer stopped"))

    def _fresh(self, batch: list[tuple[T, asyncio.Future[R], float]]) -> list[tuple[T, asyncio.Future[R]]]:
        """The items still worth writing: not cancelled, and not waiting longer than the bound."""
        oldest_allowed = time.monotonic() - self._timeout
        fresh = []
        for item, future, queued_at in batch:
            if future.done():
                continue
            if queued_at < oldest_allowed:
                future.set_exception(TimeoutError(f"{self._name}: not written within {self._timeout} s"))
                continue
            fresh.append((item, future))
        return fresh

    async def _write_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        if not batch:
            return
        futures = [future for _item, future in batch]

        def resolve(results: list[R]) -> None:
            for future, result in zip(futures, results, strict=True):
                if not future.done():
                    future.set_result(result)

        try:
            async with asyncio.timeout(self._timeout):
                await self._write([item for item, _future in batch], resolve)
        except asyncio.CancelledError:
            _fail(futures, ConnectionError("writer stopped"))
            raise
        except Exception as exc:
            log.warning("group_commit.failed", writer=self._name, size=len(batch), error=repr(exc)[:300])
            _fail(futures, exc)


def _fail(futures: list[asyncio.Future[R]], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)
