"""A measured status for DATA_DIR: can we really create, fsync and delete a file there?"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

_CACHE_S = 5.0
_TIMEOUT_S = 2.0


class StorageProbe:
    """Writes a tiny file under ``directory`` (cached for a few seconds) to report up or down."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._result: dict[str, Any] = {"status": "starting", "latency_ms": None, "last_error": None}
        self._checked_at = 0.0

    async def health(self) -> dict[str, Any]:
        """``{"status": "up" | "down", "latency_ms", "last_error", "path"}``, measured."""
        if time.monotonic() - self._checked_at < _CACHE_S:
            return self._result
        started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.to_thread(self._write_and_remove), _TIMEOUT_S)
        except Exception as exc:
            self._result = {
                "status": "down",
                "latency_ms": None,
                "last_error": f"{type(exc).__name__}: {exc}"[:300],
                "path": str(self.directory),
            }
        else:
            self._result = {
                "status": "up",
                "latency_ms": round((time.monotonic() - started) * 1000, 2),
                "last_error": None,
                "path": str(self.directory),
            }
        self._checked_at = time.monotonic()
        return self._result

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
