"""Mirror benchmark: the service's mirror worker against the durable floor, in the same run.

Everything is a real process: an embedded PostgreSQL started here, the simulator
(``python -m app.kie.simulator --result-bytes N``, which serves every result file at exactly N
bytes) and the service (``python main_render.py``, local storage under DATA_DIR/files in a
temporary directory). Two phases, each with its own simulator and service on the same database
(truncated in between):

  A. ``--count`` (50) generations of a market image model, results of ``--small-bytes``
     (1 MB = 1,000,000 bytes);
  B. one generation, a result of ``--large-bytes`` (300 MB = 300,000,000 bytes), while the
     service's RSS is sampled every 50 ms.

Each round creates a fresh batch through the HTTP API. So that the mirror's clock starts with the
whole batch available (as the floor's does), the script holds every new generation back from the
mirror with a claim of its own (``mirror_claim``/``mirror_lease_until``, set right after the 202,
while KIE is still working), waits until all have succeeded, then releases the claims and sends
a NOTIFY in one transaction: the mirror's time runs from just before that transaction to the
NOTIFY of the last ``mirror_state = 'done'`` (LISTEN here; checked against the table afterwards).

In the same round, on the same result URLs (``generations.result_urls``) and at the mirror's own
concurrency (``app.storage.mirror._CONCURRENCY``) and chunk size (``app.storage.fetch.CHUNK_BYTES``),
this process runs:
  - the durable floor: a plain aiohttp download of each URL written to a temporary file
    (aiofiles, as the local store does) in a directory of its own on the same disk, fsynced,
    renamed and the directory fsynced (what durability alone costs);
  - for reference, the same download with the bytes discarded (a download to /dev/null).
The three run in a rotating order each round (``--rounds``, after ``--warmup`` untimed rounds);
medians are compared. Each run starts after ``sync`` with the previous run's files deleted (on
this VM's disk a write onto space just freed is steady; a write beside a 300 MB file left in
place was up to 2x slower, which punished whichever system went second). Throughput is
bytes / elapsed, in MB/s (10^6 bytes); RSS is in MiB.

    python bench/mirror.py [--rounds 5] [--count 50] [--small-bytes 1000000] [--large-bytes 300000000]

Targets: mirror throughput at least 0.8x the durable floor's (each phase); the service's peak
RSS under 120 MiB while it copies the large file.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiofiles
import aiofiles.os
import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from harness import RssSampler, free_port, wait_http  # noqa: E402

from app.db.embedded import EmbeddedPostgres  # noqa: E402
from app.db.generations import EVENTS_CHANNEL  # noqa: E402
from app.kie.catalog_loader import default_catalog  # noqa: E402
from app.storage.fetch import CHUNK_BYTES  # noqa: E402
from app.storage.mirror import _CONCURRENCY  # noqa: E402

API_KEY = "bench-api-key-0123456789"
LIMITS = {"KIE_CREATE_LIMIT": "100", "KIE_CREATE_WINDOW_S": "1", "KIE_STATUS_RPS": "50"}
GATE = "bench:gate"  # the claim that holds a generation back from the mirror until the batch is ready
SYSTEMS = {
    "mirror": "service mirror",
    "floor": "durable floor",
    "hashed": "durable floor + sha256 (reference)",
    "null": "download to /dev/null",
}
RATIO_TARGET = 0.8
RSS_TARGET_MIB = 120.0
RSS_EVERY_S = 0.05
MB = 1_000_000


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def download_all(
    session: aiohttp.ClientSession,
    urls: list[str],
    dest: Path | None,
    concurrency: int,
    *,
    hashed: bool = False,
) -> tuple[float, int]:
    """Download every URL, ``concurrency`` at once: durably under ``dest``, or discarded (None).

    ``hashed``: also compute each file's sha256 (as the mirror must), to show what that costs.
    Seconds and bytes.
    """
    slots = asyncio.Semaphore(concurrency)
    total = 0

    async def one(index: int, url: str) -> None:
        nonlocal total
        async with slots, session.get(url) as resp:
            resp.raise_for_status()
            chunks = resp.content.iter_chunked(CHUNK_BYTES)
            if dest is None:
                async for chunk in chunks:
                    total += len(chunk)
                return
            directory = dest / f"{index:04d}"
            target = directory / "result-1.png"
            temporary = directory / f".result-1.png.{uuid.uuid4().hex[:12]}.tmp"
            await aiofiles.os.makedirs(directory, exist_ok=True)
            handle = await aiofiles.open(temporary, "wb")
            digest = hashlib.sha256()
            try:
                async for chunk in chunks:
                    total += len(chunk)
                    if hashed:
                        digest.update(chunk)
                    await handle.write(chunk)
                await handle.flush()
                await asyncio.to_thread(os.fsync, handle.fileno())
            finally:
                await handle.close()
            await aiofiles.os.replace(temporary, target)
            await asyncio.to_thread(_fsync_directory, directory)

    started = time.perf_counter()
    await asyncio.gather(*(one(i, url) for i, url in enumerate(urls)))
    return time.perf_counter() - started, total


class Phase:
    """One simulator (serving results of one size) and one service on the shared database."""

    def __init__(self, name: str, dsn: str, work: Path, result_bytes: int, env: dict[str, str]) -> None:
        self.name = name
        self.dsn = dsn
        self.work = work
        self.result_bytes = result_bytes
        self.env = env
        self.data_dir = work / "data"
        self.floor_dir = work / "floor"
        self.sim_port, self.port = free_port(), free_port()
        self.processes: list[subprocess.Popen[bytes]] = []
        model = next(
            m
            for m in default_catalog().models()
            if m.family == "market" and m.output == "image" and list(m.required) == ["prompt"]
        )
        self.payload = {"model": model.id, "input": {"prompt": "a lighthouse at dusk"}}
        self.model = model.id

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        sim_cmd = [sys.executable, "-m", "app.kie.simulator", "--port", str(self.sim_port)]
        sim_cmd += ["--latency", "1.0", "--callbacks", "deliver", "--result-bytes", str(self.result_bytes)]
        sim_cmd += ["--log-level", "WARNING"]
        with open(self.work / "simulator.log", "wb") as sim_log, open(self.work / "service.log", "wb") as log:
            self.processes.append(
                subprocess.Popen(sim_cmd, cwd=ROOT, env=self.env, stdout=sim_log, stderr=subprocess.STDOUT)
            )
            self.service = subprocess.Popen(
                [sys.executable, "main_render.py"],
                cwd=ROOT,
                env={
                    **self.env,
                    "PORT": str(self.port),
                    "HOST": "127.0.0.1",
                    "DATABASE_URL": self.dsn,
                    "DATA_DIR": str(self.data_dir),
                    "KIE_API_KEY": "bench-kie-key",
                    "KIE_BASE_URL": f"http://127.0.0.1:{self.sim_port}",
                    "API_KEYS": API_KEY,
                    "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}",
                    "LOG_LEVEL": "WARNING",
                    **LIMITS,
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            self.processes.append(self.service)

    def _free_disk(self, ids: list[str]) -> None:
        shutil.rmtree(self.floor_dir, ignore_errors=True)
        for generation_id in ids:
            shutil.rmtree(self.data_dir / "files" / generation_id, ignore_errors=True)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes.clear()

    async def ready(self, session: aiohttp.ClientSession) -> None:
        await wait_http(session, f"http://127.0.0.1:{self.sim_port}/_sim/stats")
        await wait_http(session, f"http://127.0.0.1:{self.port}/health", lambda b: b["role"] == "active")

    async def create_batch(self, session: aiohttp.ClientSession, pool: asyncpg.Pool, count: int) -> list[str]:
        """``count`` new generations, each held back from the mirror as soon as it exists."""

        async def one() -> str:
            async with session.post(
                f"http://127.0.0.1:{self.port}/api/v1/generations",
                json=self.payload,
                headers={"X-API-Key": API_KEY},
            ) as resp:
                body = await resp.json()
                assert resp.status == 202, body
            held = await pool.fetchval(
                "UPDATE generations SET mirror_claim = $2, mirror_lease_until = now() + interval '1 hour'"
                " WHERE id = $1::uuid AND state <> 'succeeded' RETURNING id",
                body["id"],
                GATE,
            )
            if held is None:
                raise RuntimeError("a generation succeeded before it could be held back from the mirror")
            return str(body["id"])

        return list(await asyncio.gather(*(one() for _ in range(count))))

    async def wait_succeeded(self, pool: asyncpg.Pool, ids: list[str], timeout: float = 120) -> list[str]:
        """Wait (polling every 20 ms) until every one has succeeded; their result URLs, in order."""
        deadline = time.monotonic() + timeout
        while True:
            rows = await pool.fetch(
                "SELECT state, result_urls FROM generations WHERE id = ANY($1::uuid[]) ORDER BY id", ids
            )
            states = [row["state"] for row in rows]
            if len(rows) == len(ids) and all(state == "succeeded" for state in states):
                return [url for row in rows for url in json.loads(row["result_urls"])]
            if any(state in ("failed", "timed_out", "cancelled") for state in states):
                raise RuntimeError(f"a generation did not succeed: {sorted(set(states))}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"generations still open after {timeout} s: {sorted(set(states))}")
            await asyncio.sleep(0.02)

    async def run_mirror(self, ids: list[str], expected: int, timeout: float = 600) -> dict[str, Any]:
        """Release the held batch and time the mirror until every copy is recorded."""
        conn = await asyncpg.connect(self.dsn)
        pending = set(ids)
        finished = asyncio.Event()
        last_done = 0.0

        def on_event(_conn: object, _pid: int, _channel: str, payload: object) -> None:
            nonlocal last_done
            event = json.loads(str(payload))
            # The mirror's record (or give-up) is the only change to these after the release.
            if event["id"] in pending and event["previous"] == event["state"] == "succeeded":
                pending.discard(event["id"])
                last_done = time.perf_counter()
                if not pending:
                    finished.set()

        sampler = RssSampler(self.service.pid, RSS_EVERY_S)
        try:
            await conn.add_listener(EVENTS_CHANNEL, on_event)
            idle = [sampler.sample() for _ in range(3)]
            with sampler:
                started = time.perf_counter()
                async with conn.transaction():
                    released = await conn.execute(
                        "UPDATE generations SET mirror_claim = NULL, mirror_lease_until = NULL"
                        " WHERE id = ANY($1::uuid[]) AND mirror_claim = $2",
                        ids,
                        GATE,
                    )
                    wake = {"id": str(uuid.uuid4()), "state": "succeeded", "previous": None, "stage": None}
                    await conn.execute("SELECT pg_notify($1, $2)", EVENTS_CHANNEL, json.dumps(wake))
                assert released == f"UPDATE {len(ids)}", released
                try:
                    async with asyncio.timeout(timeout):
                        await finished.wait()
                except TimeoutError:
                    raise RuntimeError(f"mirror not done after {timeout} s ({len(pending)} left)") from None
            rows = await conn.fetch(
                "SELECT mirror_state, mirror_last_error, files FROM generations WHERE id = ANY($1::uuid[])",
                ids,
            )
        finally:
            await conn.close()
        states = {row["mirror_state"] for row in rows}
        if states != {"done"}:
            errors = {row["mirror_last_error"] for row in rows}
            raise RuntimeError(f"mirror states {sorted(states)}, errors {errors}")
        stored = sum(int(f["bytes"]) for row in rows for f in json.loads(row["files"]))
        if stored != expected:
            raise RuntimeError(f"the mirror recorded {stored} bytes, expected {expected}")
        return {
            "seconds": last_done - started,
            "bytes": stored,
            "rss_idle_mib": statistics.median(idle),
            "rss_peak_mib": sampler.peak_mib,
            "rss_samples": sampler.samples,
        }

    async def one_round(
        self, session: aiohttp.ClientSession, pool: asyncpg.Pool, count: int, order: list[str]
    ) -> dict[str, Any]:
        ids = await self.create_batch(session, pool, count)
        urls = await self.wait_succeeded(pool, ids)
        expected = len(urls) * self.result_bytes
        result: dict[str, Any] = {"order": order}
        for name in order:
            await asyncio.to_thread(os.sync)  # start each run with nothing dirty on the disk
            if name == "mirror":
                run = await self.run_mirror(ids, expected)
            else:
                dest = self.floor_dir / uuid.uuid4().hex if name in ("floor", "hashed") else None
                seconds, received = await download_all(
                    session, urls, dest, _CONCURRENCY, hashed=name == "hashed"
                )
                if received != expected:
                    raise RuntimeError(f"{name} downloaded {received} bytes, expected {expected}")
                run = {"seconds": seconds, "bytes": received}
            run["mb_per_s"] = run["bytes"] / MB / run["seconds"]
            result[name] = run
            # Outside the timings, at once: every writer gets the space the previous one freed.
            # (Leaving a 300 MB copy in place made the next writer's run up to 2x slower here.)
            await asyncio.to_thread(self._free_disk, ids)
        return result


def _median(rounds: list[dict[str, Any]], name: str, key: str = "mb_per_s") -> float:
    return float(statistics.median(r[name][key] for r in rounds))


async def run_phase(
    phase: Phase, count: int, rounds: int, warmup: int, report: Callable[[str], None]
) -> dict[str, Any]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        pool = await asyncpg.create_pool(phase.dsn, min_size=2, max_size=8)
        try:
            await pool.execute("TRUNCATE generations, callback_events, leadership, uploads")
            phase.start()
            try:
                await phase.ready(session)
                timed: list[dict[str, Any]] = []
                warm: list[dict[str, Any]] = []
                names = list(SYSTEMS)
                for index in range(warmup + rounds):
                    shift = index % len(names)
                    order = names[shift:] + names[:shift]
                    result = await phase.one_round(session, pool, count, order)
                    (warm if index < warmup else timed).append(result)
                    label = "warm-up" if index < warmup else f"round {index - warmup + 1}"
                    report(
                        f"    {phase.name} {label:8s} "
                        + "  ".join(f"{n} {result[n]['mb_per_s']:7.1f} MB/s" for n in order)
                        + f"  (service RSS peak {result['mirror']['rss_peak_mib']:.1f} MiB)"
                    )
            finally:
                phase.stop()
        finally:
            await pool.close()
    medians = {name: _median(timed, name) for name in SYSTEMS}
    every = warm + timed
    return {
        "result_bytes": phase.result_bytes,
        "generations_per_round": count,
        "model": phase.model,
        "rounds": timed,
        "warmup_rounds": warm,
        "median_mb_per_s": {name: round(value, 1) for name, value in medians.items()},
        "median_seconds": {name: round(_median(timed, name, "seconds"), 4) for name in SYSTEMS},
        "ratio_mirror_floor": round(medians["mirror"] / medians["floor"], 3),
        "ratio_mirror_hashed": round(medians["mirror"] / medians["hashed"], 3),
        "ratio_floor_null": round(medians["floor"] / medians["null"], 3),
        "rss_idle_mib": round(min(r["mirror"]["rss_idle_mib"] for r in every), 1),
        "rss_peak_mib": round(max(r["mirror"]["rss_peak_mib"] for r in every), 1),
    }


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per phase; medians compared")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first, per phase")
    parser.add_argument("--count", type=int, default=50, help="generations per round in phase A")
    parser.add_argument("--small-bytes", type=int, default=1_000_000, help="result size in phase A")
    parser.add_argument("--large-bytes", type=int, default=300_000_000, help="result size in phase B")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kg-mirror-"))
    base_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "PORT", "DATA_DIR", "KIE_API_KEY", "STORAGE_URL")
        and not k.startswith("MIRROR_")
    }
    print(
        f"mirror benchmark: {os.cpu_count()} cores, concurrency {_CONCURRENCY}, "
        f"{CHUNK_BYTES // 1024} KiB chunks, {args.rounds} rounds (+{args.warmup} warm-up) per phase, "
        f"work dir {work}",
        flush=True,
    )
    pg = EmbeddedPostgres(work / "pg")
    dsn = await pg.start()
    try:
        from app.db.migrations import apply_migrations

        conn = await asyncpg.connect(dsn)
        await apply_migrations(conn)
        await conn.close()

        def report(line: str) -> None:
            print(line, flush=True)

        small = await run_phase(
            Phase("A", dsn, work / "small", args.small_bytes, base_env),
            args.count,
            args.rounds,
            args.warmup,
            report,
        )
        large = await run_phase(
            Phase("B", dsn, work / "large", args.large_bytes, base_env), 1, args.rounds, args.warmup, report
        )
    finally:
        await pg.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'':44s} {'MB/s':>8s} {'seconds':>9s}")
    for phase, title in (
        (small, f"A: {args.count} x {args.small_bytes / MB:g} MB"),
        (large, f"B: 1 x {args.large_bytes / MB:g} MB"),
    ):
        print(f"  {title} (median of {args.rounds})")
        for name, label in SYSTEMS.items():
            print(
                f"    {label:40s} {phase['median_mb_per_s'][name]:8.1f} {phase['median_seconds'][name]:9.3f}"
            )
        print(
            f"    ratio mirror / durable floor             {phase['ratio_mirror_floor']:8.2f}"
            f"   (target >= {RATIO_TARGET})  {_verdict(phase['ratio_mirror_floor'] >= RATIO_TARGET)}"
        )
        print(
            f"    ratio mirror / durable floor + sha256    {phase['ratio_mirror_hashed']:8.2f}"
            "   (for reference: the floor with the hash the mirror must compute)"
        )
        print(
            f"    durable floor / download to /dev/null    {phase['ratio_floor_null']:8.2f}"
            "   (what durability alone costs; for reference)"
        )
    print(
        f"  service RSS: idle {large['rss_idle_mib']:.1f} MiB, peak while copying the "
        f"{args.large_bytes / MB:g} MB file {large['rss_peak_mib']:.1f} MiB"
        f"   (target < {RSS_TARGET_MIB:g})  {_verdict(large['rss_peak_mib'] < RSS_TARGET_MIB)}"
    )
    print(
        f"  (phase A: idle {small['rss_idle_mib']:.1f} MiB, peak {small['rss_peak_mib']:.1f} MiB; "
        f"sampled every {RSS_EVERY_S * 1000:.0f} ms, warm-up included)"
    )
    ok = (
        small["ratio_mirror_floor"] >= RATIO_TARGET
        and large["ratio_mirror_floor"] >= RATIO_TARGET
        and large["rss_peak_mib"] < RSS_TARGET_MIB
    )
    results = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/mirror.py", *sys.argv[1:]]),
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "concurrency": _CONCURRENCY,
        "chunk_bytes": CHUNK_BYTES,
        "targets": {"ratio_mirror_floor_min": RATIO_TARGET, "rss_peak_mib_max": RSS_TARGET_MIB},
        "small": small,
        "large": large,
        "pass": ok,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "mirror.json").write_text(json.dumps(results, indent=2))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
