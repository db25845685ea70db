"""The simulator's command line: ``python -m app.kie.simulator`` starts, answers and exits cleanly."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


async def test_cli_starts_and_answers() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "app.kie.simulator", "--port", str(port), "--latency", "0.1", "--seed", "1"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        async with aiohttp.ClientSession() as session:
            while True:
                assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
                try:
                    async with session.get(f"http://127.0.0.1:{port}/_sim/stats") as response:
                        stats = await response.json()
                        break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, "the simulator never answered"
                    await asyncio.sleep(0.05)
        assert stats["GET /_sim/stats"] == 1 and stats["callbacks_sent"] == 0
    finally:
        process.terminate()
        try:
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
            if process.stderr:
                process.stderr.close()
