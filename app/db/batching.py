"""Group commit: many concurrent writers share one INSERT and one commit.

Each caller submits one item and awaits its own result. A single writer task
takes everything that queued up while the previous batch was being written and
writes it in one statement, so the cost of a commit is shared by all of them
with no added delay when the load is light (a batch of one goes out at once).

The write function receives the batch and a ``resolve`` callback: it calls
``resolve(results)`` as soon as the batch is durable (the callers go on at
once) and may then do follow-up work on the same connection, such as applying
what it stored, before the next batch starts; under load that follow-up makes
the next batch larger instead of making callers wait longer.
"""

from __future__ import annotations

import asyncio
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
        self, name: str, write: Callable[[list[T], Resolve[R]], Awaitable[None]], max_batch: int = 256
    ) -> None:
        self._name = name
        self._write = write
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the writer task."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"group_commit.{self._name}")

    async def stop(self) -> None:
        """Stop the writer; anything still queued fails with ConnectionError."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while not self._queue.empty():
            _item, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(ConnectionError("writer stopped"))

    async def submit(self, item: T, timeout: float) -> R:
        """Queue ``item`` and wait (at most ``timeout``) for its batch to be written.

        On timeout the item may still be written later; callers make that harmless
        (the inbox's unique intake id).
        """
        if self._task is None or self._task.done():
            raise ConnectionError(f"{self._name} writer is not running")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        async with asyncio.timeout(timeout):
            return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            futures = [future for _item, future in batch]

            def resolve(results: list[R], futures: list[asyncio.Future[R]] = futures) -> None:
                for future, result in zip(futures, results, strict=True):
                    if not future.done():
                        future.set_result(result)

            try:
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
