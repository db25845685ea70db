"""The measured state of the configured storage: a real round trip, cached for a few seconds
(local disk: create, fsync and remove a file; S3: a HEAD of the bucket)."""

from __future__ import annotations

from typing import Any

from app.config import StorageSettings
from app.health.probes import CachedProbe, ComponentHealth
from app.storage.store import Store

_CACHE_S = 10.0
_TIMEOUT_S = 3.0


class StoreProbe:
    """``/health/detailed``'s ``storage`` entry: ``disabled`` with ``STORAGE_URL=none``, else measured."""

    def __init__(self, store: Store | None, settings: StorageSettings, location: str) -> None:
        self._store = store
        details: dict[str, Any] = {"kind": settings.kind}
        if settings.kind == "s3":
            details.update(
                bucket=settings.bucket, prefix=settings.prefix or None, endpoint=settings.endpoint_url
            )
        elif settings.kind == "local":
            details["path"] = location
        self._details = details
        self._probe = CachedProbe(self._measure, ttl_s=_CACHE_S, timeout_s=_TIMEOUT_S, details=details)

    @property
    def enabled(self) -> bool:
        """False with ``STORAGE_URL=none``."""
        return self._store is not None

    async def health(self) -> ComponentHealth:
        """``up`` when the store answered a real request just now (or a few seconds ago)."""
        if self._store is None:
            return ComponentHealth("disabled", details=self._details)
        return await self._probe.health()

    async def close(self) -> None:
        """Cancel a measurement in flight."""
        await self._probe.close()

    async def _measure(self) -> dict[str, Any] | None:
        assert self._store is not None
        await self._store.probe()
        return None
