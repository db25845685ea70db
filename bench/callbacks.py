"""Callback benchmark: POST /callbacks/kie with durable storage against a bare aiohttp handler.

Both servers are real processes driven by the same load generator (bench/loadgen.py,
its own process) in the same run:
1. the bare handler (bench/bare_app.py: answers 200, stores nothing), closed loop: its maximum;
2. the service (``python main_render.py`` on an embedded PostgreSQL started here), closed loop;
3. the service, open loop at half of its own maximum: p50/p99 acknowledgement latency.
Runs 1 and 2 alternate for ``--rounds`` rounds and their medians are compared.

Every acknowledged callback is in the ``callback_events`` table before its 200 (checked at the end).

    python bench/callbacks.py [--seconds 5] [--connections 32]

Targets: service throughput at least 50% of the bare handler's; p99 under 20 ms at half load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.db.embedded import EmbeddedPostgres  # noqa: E402

BODY = json.dumps(
    {
        "code": 200,
        "msg": "Playground task completed successfully.",
        "data": {
            "taskId": "bench-task-e989621f54392584b05867f87b160672",
            "model": "kling-2.6/image-to-video",
            "state": "success",
            "resultJson": '{"resultUrls":["https://files.example/v.mp4"]}',
            "consumeCredits": 100,
            "costTime": 8,
            "createTime": 1755599634000,
            "completeTime": 1755599644000,
        },
    }
).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(port: int, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never answered {path}")


def load(port: int, body_file: Path, connections: int, seconds: float, rate: float = 0.0) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "loadgen.py"),
            "--port",
            str(port),
            "--body-file",
            str(body_file),
            "--connections",
            str(connections),
            "--seconds",
            str(seconds),
            "--rate",
            str(rate),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def count_events(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM callback_events"))
    finally:
        await conn.close()


async def wait_applied(dsn: str, timeout: float = 120) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not await conn.fetchval("SELECT count(*) FROM callback_events WHERE outcome IS NULL"):
                return
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def _median_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating bare/service runs; medians are compared"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kg-callbacks-"))
    body_file = work / "body.json"
    body_file.write_bytes(BODY)
    pg = EmbeddedPostgres(work / "pg")
    dsn = asyncio.run(pg.start())  # postgres is a child of this process and dies with it

    base_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORT", "DATA_DIR")}
    bare_runs: list[dict] = []
    ours_runs: list[dict] = []
    stored = acknowledged = 0
    try:
        bare_port = free_port()
        bare = start(
            [sys.executable, str(ROOT / "bench" / "bare_callback_app.py")],
            {**base_env, "PORT": str(bare_port)},
        )
        port = free_port()
        service_env = {
            **base_env,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "DATABASE_URL": dsn,
            "DATA_DIR": str(work / "data"),
            "LOG_FORMAT": "json",
        }
        service = start([sys.executable, "main_render.py"], service_env)
        try:
            wait_http(bare_port, "/health")
            wait_http(port, "/health")
            time.sleep(2.0)  # connected, migrated, intake storing directly
            load(bare_port, body_file, args.connections, 1.0)  # warm-up
            load(port, body_file, args.connections, 1.0)
            # Alternate, so a noisy neighbour hurts both sides alike; compare medians.
            for _ in range(args.rounds):
                bare_runs.append(load(bare_port, body_file, args.connections, args.seconds))
                before = asyncio.run(count_events(dsn))
                run = load(port, body_file, args.connections, args.seconds)
                stored += asyncio.run(count_events(dsn)) - before
                acknowledged += run["requests"]
                ours_runs.append(run)
            # Steady state for the latency run: let applying catch up with what the runs stored.
            asyncio.run(wait_applied(dsn))
            half_rate = statistics.median(r["rps"] for r in ours_runs) / 2
            ours_half = load(port, body_file, args.connections, args.seconds, rate=half_rate)
        finally:
            for process in (bare, service):
                process.terminate()
                process.wait(15)
    finally:
        asyncio.run(pg.stop())

    bare_max = _median_run(bare_runs)
    ours_max = _median_run(ours_runs)
    ratio = ours_max["rps"] / bare_max["rps"]
    print(
        f"POST /callbacks/kie, {args.connections} connections, {args.seconds:.0f} s per run, "
        f"median of {args.rounds} alternating rounds"
    )
    for name, run in (("bare aiohttp handler", bare_max), ("service (durable)", ours_max)):
        print(
            f"  {name:20s}  {run['rps']:9.1f} req/s   p50 {run['p50_ms']:.2f} ms  p99 {run['p99_ms']:.2f} ms"
        )
    print(f"  throughput ratio      {ratio:9.2f}     (target >= 0.50)")
    print(
        f"  service at half load  {ours_half['rps']:9.1f} req/s   p50 {ours_half['p50_ms']:.2f} ms  "
        f"p99 {ours_half['p99_ms']:.2f} ms   (target p99 < 20 ms)"
    )
    print(f"  rows stored during the closed-loop runs: {stored} for {acknowledged} acknowledged")
    errors = sum(r["errors"] + r["non_200"] for r in [*bare_runs, *ours_runs, ours_half])
    results = {"bare": bare_runs, "service": ours_runs, "service_half": ours_half, "ratio": round(ratio, 3)}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "callbacks.json").write_text(json.dumps(results, indent=2))
    ok = ratio >= 0.5 and ours_half["p99_ms"] < 20 and errors == 0 and stored >= acknowledged
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
