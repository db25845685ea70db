"""One shape for the health of every dependency, and the cached, bounded probe that measures it.

``/health/detailed`` shows a ``components`` entry per dependency (database, KIE, storage,
telegram). Each is measured, never assumed: a real request with a timeout, cached for a few
seconds so a burst of health checks costs one measurement, and shared by concurrent callers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from app.redaction import describe_error

Status = Literal["up", "down", "starting", "disabled"]


@dataclass(frozen=True)
class ComponentHealth:
    """A measured status of one dependency, as ``/health/detailed`` shows it."""

    status: Status
    latency_ms: float | None = None
    last_error: str | None = None
    checked_at: float | None = None  # monotonic; None when nothing was measured
    details: dict[str, Any] = field(default_factory=dict)  # e.g. kind, mode, credits

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of a ``components`` entry: status, latency_ms, last_error, details."""
        return {
            "status": self.status,
            "latency_ms": self.latency_ms,
            "last_error": self.last_error,
            **self.details,
        }


Measure = Callable[[], Awaitable[dict[str, Any] | None]]


class CachedProbe:
    """Runs ``measure`` at most once per ``ttl_s`` (bounded by ``timeout_s``), shared by callers.

    ``measure`` returns extra details for the entry (or None) and raises when the dependency is
    down. ``details`` are added to every entry (e.g. the backend's kind).
    """

    def __init__(
        self,
        measure: Measure,
        *,
        ttl_s: float,
        timeout_s: float,
        details: dict[str, Any] | None = None,
        on_change: Callable[[ComponentHealth], None] | None = None,
    ) -> None:
        self._measure = measure
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._details = dict(details or {})
        self._on_change = on_change
        self.last = ComponentHealth("starting", details=self._details)
        self._running: asyncio.Task[ComponentHealth] | None = None

    async def health(self) -> ComponentHealth:
        """The cached entry, or a fresh measurement when it is older than ``ttl_s``."""
        checked = self.last.checked_at
        if checked is not None and time.monotonic() - checked < self._ttl_s:
            return self.last
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._run(), name="health.probe")
        # shield: one caller giving up must not cancel the measurement the others share.
        return await asyncio.shield(self._running)

    def record(self, health: ComponentHealth) -> None:
        """Set the entry from outside a measurement (a failure seen by real traffic, say)."""
        previous, self.last = self.last, health
        if self._on_change is not None and previous.status != health.status:
            self._on_change(health)

    def invalidate(self) -> None:
        """Measure again on the next call."""
        self.last = replace(self.last, checked_at=None)

    async def close(self) -> None:
        """Cancel a measurement in flight."""
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)

    async def _run(self) -> ComponentHealth:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s):
                extra = await self._measure()
        except Exception as exc:
            health = ComponentHealth(
                "down", last_error=describe_error(exc), checked_at=time.monotonic(), details=self._details
            )
        else:
            health = ComponentHealth(
                "up",
                latency_ms=round((time.monotonic() - started) * 1000, 2),
                checked_at=time.monotonic(),
                details={**self._details, **(extra or {})},
            )
        self.record(health)
        return health
