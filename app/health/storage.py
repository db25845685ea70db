"""The measured state of DATA_DIR: can we really create, fsync and delete a file there?"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

from app.health.probes import CachedProbe, ComponentHealth

_CACHE_S = 5.0
_TIMEOUT_S = 2.0


class DataDirProbe:
    """Writes a tiny file under ``directory`` (cached for a few seconds) to report up or down."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._probe = CachedProbe(
            self._measure, ttl_s=_CACHE_S, timeout_s=_TIMEOUT_S, details={"path": str(directory)}
        )

    async def health(self) -> ComponentHealth:
        """``up`` when a file could be written, fsynced and removed just now (or a few seconds ago)."""
        return await self._probe.health()

    async def close(self) -> None:
        """Cancel a measurement in flight."""
        await self._probe.close()

    async def _measure(self) -> dict[str, Any] | None:
        await asyncio.to_thread(self._write_and_remove)
        return None

    def _write_and_remove(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f".probe-{uuid.uuid4().hex}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            path.unlink(missing_ok=True)
