"""A durable on-disk spool for callbacks that arrive while the database is unreachable.

Each process appends JSON lines to a file of its own (flushed and fsynced
before the callback is acknowledged) and holds an ``flock`` on it while the
file is open. Replay claims files nobody holds (our own, after rotating it, or
those of dead processes), feeds their records to the caller, and deletes a file
only after every record in it was stored; the records carry a unique intake id,
so a replay interrupted halfway stores nothing twice when it runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiofiles
import orjson

from app.logs import get_logger

log = get_logger(__name__)

_SUFFIX = ".jsonl"


class CallbackSpool:
    """Append-only JSON-lines files under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._file: Any = None
        self._path: Path | None = None
        self._lock = asyncio.Lock()
        self.appended = 0

    async def append(self, record: dict[str, Any]) -> None:
        """Write one record durably (flush + fsync) before returning."""
        line = orjson.dumps(record) + b"\n"
        async with self._lock:
            if self._file is None:
                await self._open()
            assert self._file is not None
            await self._file.write(line)
            await self._file.flush()
            await asyncio.to_thread(os.fsync, self._file.fileno())
            self.appended += 1

    async def _open(self) -> None:
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        path = self.directory / f"callbacks-{os.getpid()}-{uuid.uuid4().hex[:8]}{_SUFFIX}"
        file = await aiofiles.open(path, "ab", opener=lambda p, flags: os.open(p, flags, 0o600))
        # Held while we write: a replay in another process leaves a file it cannot lock alone.
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._file, self._path = file, path

    async def _rotate(self) -> None:
        """Close our current file so a replay can claim it; the next append opens a new one."""
        async with self._lock:
            if self._file is not None:
                await self._file.close()  # releases our flock
                self._file, self._path = None, None

    def has_pending(self) -> bool:
        """True when any spool file exists (ours or another process's)."""
        try:
            return any(entry.name.endswith(_SUFFIX) for entry in os.scandir(self.directory))
        except OSError:  # missing, or not a directory: nothing we could replay
            return False

    async def replay(
        self, store: Callable[[list[dict[str, Any]]], Awaitable[None]], batch_size: int = 200
    ) -> int:
        """Feed every claimable record to ``store`` in batches; delete each file once stored.

        Returns the number of records handed over. If ``store`` raises, the file stays
        and the error propagates; the next replay starts that file again.
        """
        await self._rotate()
        total = 0
        for path in sorted(await asyncio.to_thread(self._files)):
            total += await self._replay_file(path, store, batch_size)
        return total

    def _files(self) -> list[Path]:
        try:
            return [Path(entry.path) for entry in os.scandir(self.directory) if entry.name.endswith(_SUFFIX)]
        except OSError:
            return []

    async def _replay_file(
        self, path: Path, store: Callable[[list[dict[str, Any]]], Awaitable[None]], batch_size: int
    ) -> int:
        try:
            handle = open(path, "rb")  # noqa: SIM115, ASYNC230 - a local file, read once below in a thread
        except FileNotFoundError:
            return 0  # another process replayed and deleted it
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # a live process is still writing to it
            if not await asyncio.to_thread(path.exists):
                return 0  # replayed and deleted between our open and our lock
            content = await asyncio.to_thread(handle.read)
            records, bad = _decode_lines(content)
            if bad:
                log.warning("callback_spool.bad_lines", file=path.name, count=bad)
            for start in range(0, len(records), batch_size):
                await store(records[start : start + batch_size])
            await asyncio.to_thread(_unlink_durably, path)
        log.info("callback_spool.replayed", file=path.name, records=len(records))
        return len(records)


def _decode_lines(content: bytes) -> tuple[list[dict[str, Any]], int]:
    records: list[dict[str, Any]] = []
    bad = 0
    for line in content.splitlines():
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1  # a torn last line from a crash mid-write
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    return records, bad


def _unlink_durably(path: Path) -> None:
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
