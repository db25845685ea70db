"""Failover benchmark: how fast a passive instance takes over when the leader goes away.

Two ``python main_render.py`` instances share an embedded PostgreSQL started
here. Each trial kills (SIGKILL) or stops (SIGTERM) the leader and measures the
time from the signal to the moment the other instance recorded its new term
(``leadership.acquired_at``, stamped by the database), then restarts the victim.

The baseline, measured in the same run, is PostgreSQL's own floor: a bare
asyncpg session waiting in ``pg_advisory_lock`` while the process holding the
lock is SIGKILLed.

    python bench/failover.py [--trials 10]

Targets: SIGKILL under 1 s median and 2 s worst; SIGTERM under 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from harness import free_port  # noqa: E402

from app.db.embedded import EmbeddedPostgres  # noqa: E402

LOCK_NAME = "kie-gateway"


class Node:
    def __init__(self, name: str, dsn: str, log_dir: Path) -> None:
        self.name = name
        self.dsn = dsn
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "DATABASE_URL": self.dsn,
            "INSTANCE_ID": self.name,
            "LOG_FORMAT": "json",
        }
        with open(self.log_dir / f"{self.name}.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "main_render.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    async def role(self, session: aiohttp.ClientSession) -> str | None:
        try:
            async with session.get(
                f"http://127.0.0.1:{self.port}/health", timeout=aiohttp.ClientTimeout(total=1)
            ) as resp:
                return (await resp.json())["role"]
        except (aiohttp.ClientError, TimeoutError):
            return None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


async def wait_roles(session: aiohttp.ClientSession, nodes: list[Node], timeout: float = 30) -> Node:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        roles = [await node.role(session) for node in nodes]
        if sorted(roles, key=str) == ["active", "passive"]:
            return nodes[roles.index("active")]
        await asyncio.sleep(0.02)
    raise RuntimeError(f"no leader/follower pair within {timeout}s")


async def takeover_seconds(conn: asyncpg.Connection, old_epoch: int, signalled_at: float) -> float:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        row = await conn.fetchrow("SELECT epoch, acquired_at FROM leadership WHERE name = $1", LOCK_NAME)
        if row and row["epoch"] > old_epoch:
            return row["acquired_at"].timestamp() - signalled_at
        await asyncio.sleep(0.005)
    raise RuntimeError("no takeover within 15 s")


async def service_trials(dsn: str, trials: int, log_dir: Path) -> dict[str, list[float]]:
    nodes = [Node("bench-a", dsn, log_dir), Node("bench-b", dsn, log_dir)]
    for node in nodes:
        node.start()
    results: dict[str, list[float]] = {"SIGKILL": [], "SIGTERM": []}
    conn = await asyncpg.connect(dsn)
    try:
        async with aiohttp.ClientSession() as session:
            for trial in range(trials * 2):
                signum = signal.SIGKILL if trial % 2 == 0 else signal.SIGTERM
                leader = await wait_roles(session, nodes)
                old_epoch = await conn.fetchval("SELECT epoch FROM leadership WHERE name = $1", LOCK_NAME)
                assert leader.process is not None
                signalled_at = time.time()
                leader.process.send_signal(signum)
                results[signum.name].append(await takeover_seconds(conn, old_epoch, signalled_at))
                leader.process.wait(15)
                leader.start()
    finally:
        await conn.close()
        for node in nodes:
            node.stop()
    return results


_HOLDER = """
import asyncio, sys, asyncpg
async def main():
    conn = await asyncpg.connect(sys.argv[1])
    await conn.execute("SELECT pg_advisory_lock(4242)")
    print("held", flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


async def baseline_trials(dsn: str, trials: int) -> list[float]:
    """PostgreSQL's own handover: a waiter in pg_advisory_lock after the holder is SIGKILLed."""
    times = []
    waiter = await asyncpg.connect(dsn)
    try:
        for _ in range(trials):
            holder = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _HOLDER, dsn, stdout=asyncio.subprocess.PIPE
            )
            assert holder.stdout is not None
            async with asyncio.timeout(10):
                await holder.stdout.readline()
            acquiring = asyncio.create_task(waiter.execute("SELECT pg_advisory_lock(4242)"))
            await asyncio.sleep(0.2)
            killed_at = time.perf_counter()
            holder.kill()
            async with asyncio.timeout(10):
                await acquiring
            times.append(time.perf_counter() - killed_at)
            await waiter.execute("SELECT pg_advisory_unlock(4242)")
            await holder.wait()
    finally:
        await waiter.close()
    return times


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:7.1f} ms   worst {max(values) * 1000:7.1f} ms"


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kg-failover-"))
    server = EmbeddedPostgres(work / "pg")
    dsn = await server.start()
    try:
        baseline = await baseline_trials(dsn, args.trials)
        results = await service_trials(dsn, args.trials, work)
    finally:
        await server.stop()

    kill, term = results["SIGKILL"], results["SIGTERM"]
    print(f"takeover after the leader is signalled, {args.trials} trials each, two instances")
    print(f"  SIGKILL  {summary(kill)}   (target: median < 1000 ms, worst < 2000 ms)")
    print(f"  SIGTERM  {summary(term)}   (target: < 200 ms)")
    print(f"  baseline {summary(baseline)}   (bare advisory-lock handover after SIGKILL)")
    ratio = statistics.median(kill) / statistics.median(baseline)
    print(f"  SIGKILL median / baseline median: {ratio:.1f}x")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "failover.json").write_text(
        json.dumps({"sigkill_s": kill, "sigterm_s": term, "baseline_s": baseline}, indent=2)
    )
    ok = statistics.median(kill) < 1.0 and max(kill) < 2.0 and max(term) < 0.2
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
