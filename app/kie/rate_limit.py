"""Sliding-window limits for KIE's request quotas (creates per 10 s, status queries per second).

KIE counts requests when they arrive, and a request arrives somewhere between the moment we
let it go and the moment its answer is back. So a request counts against the window while it
is in flight, and afterwards from the moment its answer came: then no window of KIE's clock can
see more than ``limit`` of our requests, however the event loop or the network delays them.
(A token bucket would not do: starting full, it lets a burst plus its refill into one window.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator


class RateLimitTimeout(Exception):
    """No slot became free within the allowed wait."""


class SlidingWindowLimiter:
    """At most ``limit`` requests in any ``period`` seconds, counting requests in flight."""

    def __init__(self, limit: int, period: float) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a limit needs at least one request and a positive period")
        self.limit = limit
        self.period = period
        self._done: collections.deque[float] = collections.deque()
        self._in_flight = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def slot(self, timeout: float) -> AsyncIterator[None]:
        """Hold a slot for one request; raises RateLimitTimeout after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                now = time.monotonic()
                while self._done and now - self._done[0] >= self.period:
                    self._done.popleft()
                if self._in_flight + len(self._done) < self.limit:
                    self._in_flight += 1
                    break
                # Free again when the oldest finished request leaves the window, or a request ends.
                wait = self.period - (now - self._done[0]) if self._done else self.period
                wait = min(wait, deadline - now)
                if wait <= 0:
                    raise RateLimitTimeout(f"no request slot within {timeout:.0f} s")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait + 0.001):
                        await self._changed.wait()
        try:
            yield
        finally:
            async with self._changed:
                self._in_flight -= 1
                self._done.append(time.monotonic())
                self._changed.notify_all()
