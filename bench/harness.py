"""What the benchmarks share: a free port, waiting for a service to answer, sampling a process's
memory. (The benchmarks are scripts: ``python bench/<name>.py`` puts this folder on the path.)"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import aiohttp
import psutil


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_http(session: aiohttp.ClientSession, url: str, check: Any = None, timeout: float = 60) -> None:
    """Until ``url`` answers 200 (and ``check(body)`` holds); RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                if resp.status == 200 and (check is None or check(await resp.json())):
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} never became ready")


class RssSampler:
    """The RSS (MiB) of one process, sampled every ``every`` seconds in a thread: the peak and the last."""

    def __init__(self, pid: int, every: float) -> None:
        self._process = psutil.Process(pid)
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak_mib = 0.0
        self.last_mib = 0.0
        self.samples = 0

    def sample(self) -> float:
        """The RSS now."""
        return float(self._process.memory_info().rss) / 1024**2

    def _take(self) -> None:
        self.last_mib = self.sample()
        self.peak_mib = max(self.peak_mib, self.last_mib)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._take()
            self._stop.wait(self._every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._take()
