"""The measured state of KIE: a cheap real request (the credit balance), cached."""

from __future__ import annotations

import time
from typing import Any

from app.health.probes import CachedProbe, ComponentHealth
from app.kie.client import KieClient

_CACHE_S = 30.0
_TIMEOUT_S = 3.0


class KieProbe:
    """``/health/detailed``'s ``kie`` entry: up when KIE answered our key recently."""

    def __init__(self, client: KieClient, mode: str) -> None:
        self._client = client
        self.mode = mode  # "live" or "simulator"
        self._probe = CachedProbe(self._measure, ttl_s=_CACHE_S, timeout_s=_TIMEOUT_S)

    async def health(self) -> ComponentHealth:
        """Status, mode, base URL, credits and the last error (never the key)."""
        if self._client.auth_failed:
            # A 401 seen by any request marks KIE down at once, cache or not.
            self._probe.record(
                ComponentHealth("down", last_error=self._client.last_error, checked_at=time.monotonic())
            )
            health = self._probe.last
        else:
            health = await self._probe.health()
        return ComponentHealth(
            health.status,
            health.latency_ms,
            health.last_error,
            health.checked_at,
            {**health.details, "mode": self.mode, "base_url": self._client.base_url},
        )

    async def close(self) -> None:
        """Cancel a measurement in flight."""
        await self._probe.close()

    async def _measure(self) -> dict[str, Any] | None:
        return {"credits": await self._client.credits()}
