"""A measured status for KIE: a cheap real request (the credit balance), cached."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from app.kie.client import KieClient, KieError

_CACHE_S = 30.0
_TIMEOUT_S = 3.0


class KieHealth:
    """``/health/detailed``'s ``kie`` entry: up when KIE answered our key recently."""

    def __init__(self, client: KieClient, mode: str) -> None:
        self._client = client
        self.mode = mode  # "live" or "simulator"
        self._result: dict[str, Any] = {"status": "starting", "last_error": None}
        self._checked_at = -_CACHE_S

    async def health(self) -> dict[str, Any]:
        """Status, mode, base URL and the last error (never the key)."""
        if self._client.auth_failed:
            # A 401 seen by any request marks KIE down at once, cache or not.
            self._result = {"status": "down", "last_error": self._client.last_error}
            self._checked_at = time.monotonic()
        elif time.monotonic() - self._checked_at >= _CACHE_S:
            try:
                credits = await asyncio.wait_for(self._client.credits(), _TIMEOUT_S)
            except (KieError, TimeoutError, OSError, RuntimeError) as exc:
                self._result = {"status": "down", "last_error": str(exc)[:300] or type(exc).__name__}
            else:
                self._result = {"status": "up", "last_error": None, "credits": credits}
            self._checked_at = time.monotonic()
        return {**self._result, "mode": self.mode, "base_url": self._client.base_url}
