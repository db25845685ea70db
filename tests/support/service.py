"""Real ``python main_render.py`` processes for tests about startup, signals and leadership."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """One service process with its own port and a log file the test can read."""

    def __init__(self, env: dict[str, str], log_path: Path, module: str | None = None) -> None:
        # Either the real entry point or a test module that adds singleton work to it.
        self.command = [sys.executable, "-m", module] if module else [sys.executable, "main_render.py"]
        self.port = int(env.get("PORT") or free_port())
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in _SERVICE_VARIABLES},
            "HOST": "127.0.0.1",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
            # Its own DATA_DIR unless the test names one: never the repository's ./data.
            "DATA_DIR": str(log_path.parent / f"data-{log_path.stem}"),
            **env,
            "PORT": str(self.port),
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        """Spawn the process; returns at once."""
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps writing to it
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log_file.close()
        return self

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.process is not None
        return self.process.pid

    def send(self, signum: signal.Signals) -> None:
        """Send a signal to the process."""
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait for exit; return the exit code (raises subprocess.TimeoutExpired)."""
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        """Make sure the process is gone (SIGTERM, then SIGKILL)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(12)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def log_events(self) -> list[dict[str, Any]]:
        """Every JSON log line written so far."""
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def events_named(self, name: str) -> list[dict[str, Any]]:
        """The JSON log lines whose event is ``name``."""
        return [event for event in self.log_events() if event.get("event") == name]

    async def role(self, session: aiohttp.ClientSession) -> str | None:
        """The role /health reports, or None when the process does not answer."""
        try:
            status, body = await self.get_json(session, "/health", timeout=1.0)
        except (aiohttp.ClientError, TimeoutError):
            return None
        return body.get("role") if status == 200 else None

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        """The raw log, for assertion messages."""
        return self.log_path.read_text(errors="replace")

    async def get_json(
        self, session: aiohttp.ClientSession, path: str, timeout: float = 2.0
    ) -> tuple[int, dict[str, Any]]:
        """GET a path; return status and JSON body."""
        async with session.get(self.base_url + path, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            return resp.status, await resp.json()

    async def wait_for(
        self,
        session: aiohttp.ClientSession,
        path: str,
        predicate: Any,
        timeout: float,
        interval: float = 0.02,
    ) -> dict[str, Any]:
        """Poll ``path`` until ``predicate(body)`` holds; fail with the log after ``timeout``."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"service exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                status, body = await self.get_json(session, path, timeout=1.0)
                last = (status, body)
                if status == 200 and predicate(body):
                    return body
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = exc
            await asyncio.sleep(interval)
        raise AssertionError(
            f"{path} never satisfied the condition; last={last!r}\n{self.log_text()[-4000:]}"
        )


# Variables of ours that must not leak from the developer's shell into a test process.
_SERVICE_VARIABLES = frozenset(
    {
        "PORT",
        "HOST",
        "DATABASE_URL",
        "LOCK_DATABASE_URL",
        "DATA_DIR",
        "PUBLIC_BASE_URL",
        "RENDER_EXTERNAL_URL",
        "KIE_API_KEY",
        "KIE_BASE_URL",
        "API_KEYS",
        "TELEGRAM_BOT_TOKEN",
        "INSTANCE_ID",
        "LOG_LEVEL",
        "LOG_FORMAT",
    }
)
