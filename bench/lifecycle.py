"""Lifecycle benchmark: 200 generations through the service and the KIE simulator (1 s of work each).

Everything is a real process: an embedded PostgreSQL started here, the simulator
(``python -m app.kie.simulator``) and the service (``python main_render.py``).
Generations are created through the HTTP API at a steady rate; the database's own
timestamps give create-to-succeeded times. Two runs: callbacks delivered, then
callbacks dropped (everything must still succeed, by polling).

    python bench/lifecycle.py [--count 200] [--rate 50]

Prints: median and p99 of create-to-succeeded minus the simulated second (target with
callbacks: median < 150 ms), status queries per generation (target with callbacks: <= 1),
the highest request rate KIE saw per endpoint against the configured limits, and how soon a
client waiting with ``?wait=60`` gets its answer after the state change (target with callbacks:
median < 100 ms; one waiter per generation, all at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from harness import free_port, wait_http  # noqa: E402

from app.db.embedded import EmbeddedPostgres  # noqa: E402
from app.kie.catalog_loader import default_catalog  # noqa: E402
from app.kie.endpoints import ENDPOINTS  # noqa: E402

WORK_S = 1.0
API_KEY = "bench-api-key-0123456789"
LIMITS = {"KIE_CREATE_LIMIT": "100", "KIE_CREATE_WINDOW_S": "1", "KIE_STATUS_RPS": "50"}


async def one_run(dsn: str, work: Path, callbacks: str, count: int, rate: float) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    await conn.execute("TRUNCATE generations, callback_events, leadership")
    await conn.close()
    sim_port, port = free_port(), free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORT", "DATA_DIR", "KIE_API_KEY")
    }
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.kie.simulator",
            "--port",
            str(sim_port),
            "--latency",
            str(WORK_S),
            "--callbacks",
            callbacks,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    service = subprocess.Popen(
        [sys.executable, "main_render.py"],
        cwd=ROOT,
        env={
            **env,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "DATABASE_URL": dsn,
            "DATA_DIR": str(work / callbacks),
            "KIE_API_KEY": "bench-kie-key",
            "KIE_BASE_URL": f"http://127.0.0.1:{sim_port}",
            "API_KEYS": API_KEY,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "LOG_LEVEL": "WARNING",
            **LIMITS,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    model = next(m for m in default_catalog().models() if m.family == "market" and m.output == "image")
    payload = {"model": model.id, "input": {name: "a lighthouse at dusk" for name in model.required}}
    try:
        async with aiohttp.ClientSession() as session:
            await wait_http(session, f"http://127.0.0.1:{sim_port}/_sim/stats")
            await wait_http(session, f"http://127.0.0.1:{port}/health", lambda b: b["role"] == "active")
            ids: list[str] = []
            answered_at: dict[str, float] = {}

            async def create() -> None:
                async with session.post(
                    f"http://127.0.0.1:{port}/api/v1/generations",
                    json=payload,
                    headers={"X-API-Key": API_KEY},
                ) as resp:
                    body = await resp.json()
                    assert resp.status == 202, body
                    ids.append(body["id"])
                async with session.get(
                    f"http://127.0.0.1:{port}/api/v1/generations/{body['id']}?wait=60",
                    headers={"X-API-Key": API_KEY},
                ) as resp:
                    if (await resp.json())["state"] == "succeeded":
                        answered_at[body["id"]] = time.time()

            started = time.monotonic()
            pending = []
            for i in range(count):
                await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
                pending.append(asyncio.create_task(create()))
            await asyncio.gather(*pending)

            conn = await asyncpg.connect(dsn)
            try:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    open_count = await conn.fetchval(
                        "SELECT count(*) FROM generations"
                        " WHERE state NOT IN ('succeeded', 'failed', 'timed_out')"
                    )
                    if open_count == 0:
                        break
                    await asyncio.sleep(0.2)
                rows = await conn.fetch(
                    "SELECT id::text, state, extract(epoch FROM finished_at - created_at) AS seconds,"
                    " extract(epoch FROM finished_at) AS finished, status_checks FROM generations"
                )
            finally:
                await conn.close()
            async with session.get(f"http://127.0.0.1:{sim_port}/_sim/stats") as resp:
                stats = await resp.json()
            async with session.get(f"http://127.0.0.1:{sim_port}/_sim/rates") as resp:
                rates = await resp.json()
    finally:
        for process in (service, sim):
            process.terminate()
            process.wait(15)
    succeeded = [r for r in rows if r["state"] == "succeeded"]
    extra = sorted(float(r["seconds"]) - WORK_S for r in succeeded)
    # finished_at is the moving transaction's start, so this includes its commit and NOTIFY.
    wake = sorted(answered_at[r["id"]] - float(r["finished"]) for r in succeeded if r["id"] in answered_at)
    create_path, status_path = f"POST {ENDPOINTS['market'].create}", f"GET {ENDPOINTS['market'].status}"
    return {
        "callbacks": callbacks,
        "generations": len(rows),
        "succeeded": len(succeeded),
        "median_extra_ms": round(statistics.median(extra) * 1000, 1) if extra else None,
        "p99_extra_ms": round(extra[min(len(extra) - 1, int(0.99 * len(extra)))] * 1000, 1)
        if extra
        else None,
        "waiter_median_ms": round(statistics.median(wake) * 1000, 1) if wake else None,
        "waiter_p99_ms": round(wake[min(len(wake) - 1, int(0.99 * len(wake)))] * 1000, 1) if wake else None,
        "status_queries_per_generation": round(sum(r["status_checks"] for r in rows) / max(1, len(rows)), 3),
        "kie_status_requests": stats.get(status_path, 0),
        "kie_create_requests": stats.get(create_path, 0),
        "max_creates_per_s": rates.get(create_path, 0),
        "max_status_per_s": rates.get(status_path, 0),
    }


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="generations created per second")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kg-lifecycle-"))
    pg = EmbeddedPostgres(work / "pg")
    dsn = await pg.start()
    try:
        from app.db.migrations import apply_migrations

        conn = await asyncpg.connect(dsn)
        await apply_migrations(conn)
        await conn.close()
        delivered = await one_run(dsn, work, "deliver", args.count, args.rate)
        dropped = await one_run(dsn, work, "drop", args.count, args.rate)
    finally:
        await pg.stop()

    print(
        f"{args.count} generations at {args.rate:.0f}/s, {WORK_S:.0f} s of simulated work each; "
        f"limits {LIMITS}"
    )
    for run in (delivered, dropped):
        print(
            f"  callbacks {run['callbacks']:8s} succeeded {run['succeeded']}/{run['generations']}  "
            f"create->succeeded minus work: median {run['median_extra_ms']} ms, "
            f"p99 {run['p99_extra_ms']} ms  "
            f"status queries/generation {run['status_queries_per_generation']}  "
            f"creates at KIE {run['kie_create_requests']}"
        )
        print(
            f"           ?wait=60 answered after the state change: median {run['waiter_median_ms']} ms, "
            f"p99 {run['waiter_p99_ms']} ms"
        )
        print(
            f"           highest rate at KIE: creates {run['max_creates_per_s']}/s "
            f"(limit {LIMITS['KIE_CREATE_LIMIT']}/{LIMITS['KIE_CREATE_WINDOW_S']}s), "
            f"status {run['max_status_per_s']}/s (limit {LIMITS['KIE_STATUS_RPS']}/s)"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "lifecycle.json").write_text(json.dumps({"delivered": delivered, "dropped": dropped}, indent=2))
    ok = (
        delivered["succeeded"] == delivered["generations"] == args.count
        and dropped["succeeded"] == dropped["generations"] == args.count
        and delivered["median_extra_ms"] is not None
        and delivered["median_extra_ms"] < 150
        and delivered["status_queries_per_generation"] <= 1
        and delivered["waiter_median_ms"] is not None
        and delivered["waiter_median_ms"] < 100
        and delivered["kie_create_requests"] == dropped["kie_create_requests"] == args.count
        and max(delivered["max_creates_per_s"], dropped["max_creates_per_s"])
        <= int(LIMITS["KIE_CREATE_LIMIT"])
        and max(delivered["max_status_per_s"], dropped["max_status_per_s"]) <= int(LIMITS["KIE_STATUS_RPS"])
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
