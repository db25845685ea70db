"""LISTEN on a dedicated connection and fan notifications out to in-process subscribers.

LISTEN is session state, so it lives on its own direct connection (never a pooled
one, which a transaction-mode pooler would share). The connection is re-made with
backoff when it drops; subscribers always also re-read storage on a timer, so a
notification lost during a reconnect only delays them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg

from app.backoff import Backoff
from app.logs import get_logger
from app.redaction import describe_error

log = get_logger(__name__)

_QUEUE_SIZE = 1000


class Notifications:
    """Subscriptions to PostgreSQL channels, served by one LISTEN connection."""

    def __init__(self, dsn_provider: Callable[[], Awaitable[str]], channels: tuple[str, ...]) -> None:
        self._dsn_provider = dsn_provider
        self._channels = channels
        self._subscribers: dict[str, set[asyncio.Queue[str]]] = {channel: set() for channel in channels}
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.last_error: str | None = None

    def start(self) -> None:
        """Begin listening in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notifications")

    async def stop(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def subscribe(self, channel: str) -> asyncio.Queue[str]:
        """A queue that receives every payload sent on ``channel`` from now on."""
        queue: asyncio.Queue[str] = asyncio.Queue(_QUEUE_SIZE)
        self._subscribers[channel].add(queue)
        return queue

    def unsubscribe(self, channel: str, queue: asyncio.Queue[str]) -> None:
        """Stop delivering to ``queue``."""
        self._subscribers[channel].discard(queue)

    def _deliver(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        for queue in list(self._subscribers.get(channel, ())):
            if queue.full():
                # A slow subscriber loses the oldest wake-up; it re-reads storage anyway.
                queue.get_nowait()
            queue.put_nowait(str(payload))

    async def _run(self) -> None:
        backoff = Backoff(base=0.1, cap=3.0)
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(await self._dsn_provider(), timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel in self._channels:
                    await conn.add_listener(channel, self._deliver)
                self.connected.set()
                self.last_error = None
                backoff.reset()
                # Wake everyone once: anything sent while we were away must be re-read.
                for channel in self._channels:
                    self._deliver(conn, 0, channel, "")
                while not lost.is_set():
                    try:
                        async with asyncio.timeout(5.0):
                            await lost.wait()
                    except TimeoutError:
                        await conn.fetchval("SELECT 1", timeout=2.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = describe_error(exc)
                log.warning("notifications.lost", error=self.last_error)
            finally:
                self.connected.clear()
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(backoff.next_delay())
