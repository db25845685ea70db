"""Events benchmark: SSE and WebSocket subscribers against the direct NOTIFY, and RSS with 10,000
open generations.

Everything is a real process: an embedded PostgreSQL started here, the simulator
(``python -m app.kie.simulator``) and the service (``python main_render.py``, ``STORAGE_URL=none``
so every stream ends at the terminal state). Two phases, each with its own simulator and service
on the same database (truncated in between):

  A. Latency. ``--count`` (100) generations of ``google/nano-banana`` are created through the API
     at ``--rate`` per second; the simulator takes ``--latency`` seconds on each, long enough for
     every subscriber to connect first. Then ``--per`` (10) SSE streams
     (``GET /api/v1/generations/{id}/events``) and ``--per`` WebSocket followers
     (``GET /api/v1/ws?generation={id}``) per generation connect (1,000 + 1,000), driven by
     ``--workers`` client processes per protocol so that one busy client loop does not add its
     own delay. Each client stamps the wall time (``time.time()``) at which each event arrives.
     This process holds a direct LISTEN on ``generation_events`` (asyncpg) and stamps each
     terminal NOTIFY the same way.

     The state change is the terminal row's ``finished_at`` (PostgreSQL ``now()``: the start of
     the transaction that moved the state, which also sent the NOTIFY; ``updated_at`` is the same
     instant, but the mirror's later update moves it). PostgreSQL and the clients read the same
     wall clock on this machine, so every latency below is an arrival stamp minus that instant:
       - direct LISTEN (the baseline): the NOTIFY's arrival here;
       - SSE / WebSocket: the arrival of the ``completed`` (or ``error``) event at each client.
     Also printed: the event's arrival minus the NOTIFY's arrival here (what the service adds
     after the commit). The service applies callbacks in batches, one transaction each, so a
     state change is visible (and notified) only when its batch commits: the baseline is the
     floor for every subscriber, and it grows with the batch.

  B. RSS. A fresh service, the simulator slowed to a day per task: one generation is created
     through the API, ``--open - 1`` copies of its row are inserted as ``queued`` in one
     statement, and the submitter is woken; the service submits them all to the simulator and
     polls them. Its RSS (psutil) is sampled every 0.5 s from before the insert until every one
     is submitted and has had a status check, and for ``--hold`` seconds more. For this phase
     only the limits are raised (``KIE_CREATE_LIMIT=1000`` per second, ``KIE_STATUS_RPS=200``) so
     that this takes a minute or two, not ten.

    python bench/events.py [--count 100] [--per 10] [--workers 2] [--rate 50] [--latency 20]
                           [--open 10000] [--hold 30]

Targets: p99 from the state change to the event at the client under 100 ms (SSE and WebSocket);
the service's peak RSS with 10,000 open generations under 200 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from harness import RssSampler, free_port, wait_http  # noqa: E402

from app.db.embedded import EmbeddedPostgres  # noqa: E402
from app.db.generations import CREATED_CHANNEL, EVENTS_CHANNEL  # noqa: E402

API_KEY = "bench-api-key-0123456789"
MODEL = "google/nano-banana"
LIMITS = {"KIE_CREATE_LIMIT": "100", "KIE_CREATE_WINDOW_S": "1", "KIE_STATUS_RPS": "50"}
RSS_LIMITS = {**LIMITS, "KIE_CREATE_LIMIT": "1000", "KIE_STATUS_RPS": "200"}
TERMINAL = frozenset({"succeeded", "failed", "timed_out", "canceled"})
END_EVENTS = frozenset({"completed", "error"})
P99_TARGET_MS = 100.0
RSS_TARGET_MIB = 200.0
RSS_EVERY_S = 0.5
NOFILE = 16384

# One event at one client: (protocol, generation id, event type, arrival wall time, data.state).
Arrival = tuple[str, str, str, float, str]


def raise_nofile(wanted: int = NOFILE) -> int:
    """Raise the soft open-file limit (children inherit it); the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary_ms(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


async def _sse_client(
    session: aiohttp.ClientSession, base: str, generation_id: str, out: list[Arrival], ready: asyncio.Event
) -> None:
    url = f"{base}/api/v1/generations/{generation_id}/events"
    async with session.get(url, headers={"X-API-Key": API_KEY}) as resp:
        if resp.status != 200:
            raise RuntimeError(f"SSE answered {resp.status}")
        kind = "message"
        async for raw in resp.content:
            now = time.time()
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
                out.append(("sse", generation_id, kind, now, str(data.get("data", {}).get("state"))))
                ready.set()
            elif not line:
                kind = "message"


async def _ws_client(
    session: aiohttp.ClientSession, base: str, generation_id: str, out: list[Arrival], ready: asyncio.Event
) -> None:
    url = f"{base}/api/v1/ws?generation={generation_id}"
    async with session.ws_connect(url, headers={"X-API-Key": API_KEY}, heartbeat=None) as ws:
        async for message in ws:
            now = time.time()
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            event = json.loads(message.data)
            state = str(event.get("data", {}).get("state"))
            out.append(("ws", generation_id, str(event.get("type")), now, state))
            ready.set()


async def _worker(
    protocol: str, base: str, ids: list[str], per: int, pipe: multiprocessing.connection.Connection
) -> dict[str, Any]:
    arrivals: list[Arrival] = []
    errors: list[str] = []
    client = _sse_client if protocol == "sse" else _ws_client
    timeout = aiohttp.ClientTimeout(total=None, connect=60, sock_connect=60)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        readies: list[asyncio.Event] = []
        tasks: list[asyncio.Task[None]] = []

        async def one(generation_id: str, ready: asyncio.Event) -> None:
            try:
                await client(session, base, generation_id, arrivals, ready)
            except Exception as exc:  # counted and reported; the others go on
                errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                ready.set()

        started = time.time()
        for generation_id in ids:
            for _ in range(per):
                ready = asyncio.Event()
                readies.append(ready)
                tasks.append(asyncio.create_task(one(generation_id, ready)))
        await asyncio.gather(*(ready.wait() for ready in readies))
        pipe.send(("ready", {"seconds": time.time() - started, "errors": len(errors)}))
        # The streams end by themselves after the end; the parent may say to stop waiting sooner.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(pipe.fileno(), stop.set)
        try:
            stopper = asyncio.ensure_future(stop.wait())
            gathered = asyncio.gather(*tasks)
            waited: set[asyncio.Future[Any]] = {stopper, gathered}
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        finally:
            loop.remove_reader(pipe.fileno())
        stopper.cancel()
        open_left = sum(1 for task in tasks if not task.done())
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gathered
    return {"arrivals": arrivals, "errors": errors, "open_at_stop": open_left}


def worker_main(protocol: str, base: str, ids: list[str], per: int, pipe: Any) -> None:
    """One client process: ``per`` subscribers of ``protocol`` to each of ``ids``."""
    raise_nofile()
    pipe.send(("done", asyncio.run(_worker(protocol, base, ids, per, pipe))))


# --- the processes under test --------------------------------------------------------------------


class Stack:
    """One simulator and one service on the shared database."""

    def __init__(self, dsn: str, work: Path, sim_latency: float, limits: dict[str, str]) -> None:
        self.dsn, self.work = dsn, work
        self.sim_latency, self.limits = sim_latency, limits
        self.sim_port, self.port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "PORT", "DATA_DIR", "KIE_API_KEY", "STORAGE_URL")
            and not k.startswith(("MIRROR_", "KIE_", "WEBHOOK_", "TELEGRAM_"))
        }
        sim_cmd = [sys.executable, "-m", "app.kie.simulator", "--port", str(self.sim_port)]
        sim_cmd += ["--latency", str(self.sim_latency), "--callbacks", "deliver", "--log-level", "WARNING"]
        with open(self.work / "simulator.log", "wb") as sim_log, open(self.work / "service.log", "wb") as log:
            self.processes.append(
                subprocess.Popen(sim_cmd, cwd=ROOT, env=env, stdout=sim_log, stderr=subprocess.STDOUT)
            )
            self.service = subprocess.Popen(
                [sys.executable, "main_render.py"],
                cwd=ROOT,
                env={
                    **env,
                    "PORT": str(self.port),
                    "HOST": "127.0.0.1",
                    "DATABASE_URL": self.dsn,
                    "DATA_DIR": str(self.work / "data"),
                    "STORAGE_URL": "none",
                    "KIE_API_KEY": "bench-kie-key",
                    "KIE_BASE_URL": f"http://127.0.0.1:{self.sim_port}",
                    "API_KEYS": API_KEY,
                    "PUBLIC_BASE_URL": self.base,
                    "LOG_LEVEL": "WARNING",
                    **self.limits,
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            self.processes.append(self.service)

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
        try:
            await wait_http(session, f"http://127.0.0.1:{self.sim_port}/_sim/stats")
            await wait_http(session, f"{self.base}/health", lambda b: b["role"] == "active")
        except RuntimeError:
            for name in ("simulator.log", "service.log"):
                tail = (self.work / name).read_text(errors="replace").splitlines()[-15:]
                print(f"--- {name} (last lines)", *tail, sep="\n", file=sys.stderr)
            raise

    async def create(self, session: aiohttp.ClientSession) -> str:
        async with session.post(
            f"{self.base}/api/v1/generations",
            json={"model": MODEL, "input": {"prompt": "a lighthouse at dusk"}},
            headers={"X-API-Key": API_KEY},
        ) as resp:
            body = await resp.json()
            if resp.status != 202:
                raise RuntimeError(f"create answered {resp.status}: {body}")
            return str(body["id"])


def _service_cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# --- phase A: latency ---------------------------------------------------------------------------


async def latency_phase(dsn: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack(dsn, work / "latency", args.latency, LIMITS)
    listen = await asyncpg.connect(dsn)
    ended_at: dict[str, float] = {}  # generation id -> the terminal NOTIFY's arrival here
    all_ended = asyncio.Event()
    ids: list[str] = []

    def on_event(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        now = time.time()
        event = json.loads(str(payload))
        if event.get("state") in TERMINAL and event.get("previous") not in TERMINAL:
            ended_at.setdefault(str(event["id"]), now)
            if ids and all(i in ended_at for i in ids):
                all_ended.set()

    context = multiprocessing.get_context("spawn")
    workers: list[tuple[str, Any, multiprocessing.connection.Connection]] = []
    try:
        await listen.add_listener(EVENTS_CHANNEL, on_event)
        await listen.execute("TRUNCATE generations, callback_events, leadership, uploads CASCADE")
        stack.start()
        async with aiohttp.ClientSession() as session:
            await stack.ready(session)
            started, first_created = time.monotonic(), time.time()
            pending = []
            for i in range(args.count):
                await asyncio.sleep(max(0.0, started + i / args.rate - time.monotonic()))
                pending.append(asyncio.create_task(stack.create(session)))
            ids.extend(await asyncio.gather(*pending))
            if all(i in ended_at for i in ids):
                all_ended.set()
        created_s = time.monotonic() - started

        connect_started = time.time()
        for protocol in ("sse", "ws"):
            for index in range(args.workers if protocol in args.protocols.split(",") else 0):
                parent_end, child_end = context.Pipe()
                process = context.Process(
                    target=worker_main,
                    args=(protocol, stack.base, ids[index :: args.workers], args.per, child_end),
                    daemon=True,
                )
                process.start()
                child_end.close()
                workers.append((protocol, process, parent_end))
        readiness = [await asyncio.to_thread(pipe.recv) for _, _, pipe in workers]
        connected_at = time.time()
        ended_before_ready = sum(1 for t in ended_at.values() if t < connected_at)
        connect_errors = sum(int(r[1]["errors"]) for r in readiness)

        # What the connected subscribers cost while nothing changes: the service's CPU and the
        # database transactions per second, until a second before the first generation can end.
        quiet = {"seconds": 0.0, "service_cpu_per_s": None, "db_transactions_per_s": None}
        quiet_s = first_created + args.latency - 1.0 - time.time()
        if quiet_s >= 1.0:
            xacts = (
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
            )
            cpu0, xact0, t0 = (
                _service_cpu_s(stack.service.pid),
                int(await listen.fetchval(xacts)),
                time.time(),
            )
            await asyncio.sleep(quiet_s)
            seconds = time.time() - t0
            quiet = {
                "seconds": round(seconds, 2),
                "service_cpu_per_s": round((_service_cpu_s(stack.service.pid) - cpu0) / seconds, 3),
                "db_transactions_per_s": round((int(await listen.fetchval(xacts)) - xact0) / seconds),
            }

        rss = RssSampler(stack.service.pid, RSS_EVERY_S)
        cpu_before = _service_cpu_s(stack.service.pid)
        if args.py_spy:  # a profile of the service from here to the end of the streams (collapsed stacks)
            spy_cmd = [
                "py-spy",
                "record",
                "--pid",
                str(stack.service.pid),
                "--format",
                "raw",
                "--nonblocking",
            ]
            spy_cmd += ["--output", str(stack.work / "service.pyspy.txt")]
            spy = subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with rss:
            try:
                async with asyncio.timeout(args.latency * 3 + 120):
                    await all_ended.wait()
            except TimeoutError:
                raise RuntimeError(f"only {len(ended_at)}/{len(ids)} generations ended") from None
            # Every stream ends by itself after the end; give stragglers a generous while.
            last_end = time.time()
            results: list[tuple[str, dict[str, Any]]] = []
            deadline = time.monotonic() + args.drain
            for protocol, _, pipe in workers:
                remaining = max(0.1, deadline - time.monotonic())
                if not await asyncio.to_thread(pipe.poll, remaining):
                    pipe.send("stop")
                message = await asyncio.to_thread(pipe.recv)
                results.append((protocol, message[1]))
            drained_s = time.time() - last_end
        cpu_s = _service_cpu_s(stack.service.pid) - cpu_before
        if args.py_spy:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        window_s = time.time() - connected_at

        rows = await listen.fetch(
            "SELECT id::text, state, extract(epoch FROM finished_at)::float8 AS finished"
            " FROM generations WHERE id = ANY($1::uuid[])",
            ids,
        )
    finally:
        for _, process, pipe in workers:
            with contextlib.suppress(OSError, BrokenPipeError):
                pipe.send("stop")
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
            pipe.close()
        stack.stop()
        await listen.close()

    finished = {row["id"]: float(row["finished"]) for row in rows if row["finished"] is not None}
    states = sorted({str(row["state"]) for row in rows})
    # Moves in one transaction share its now(): how the terminal moves were batched.
    batches = collections.Counter(finished.values())
    baseline = [ended_at[i] - finished[i] for i in ids if i in ended_at and i in finished]
    by_protocol: dict[str, dict[str, Any]] = {}
    for protocol in ("sse", "ws"):
        mine = [r for p, r in results if p == protocol]
        arrivals = [a for r in mine for a in r["arrivals"]]
        # The first completed/error event of each connection: one per (generation, subscriber).
        ends = [a for a in arrivals if a[2] in END_EVENTS]
        latency = [a[3] - finished[a[1]] for a in ends if a[1] in finished]
        added = [a[3] - ended_at[a[1]] for a in ends if a[1] in ended_at]
        by_protocol[protocol] = {
            "subscribers": args.count * args.per,
            "events": len(arrivals),
            "end_events": len(ends),
            "errors": sum(len(r["errors"]) for r in mine),
            "error_samples": sorted({e for r in mine for e in r["errors"]})[:5],
            "open_at_stop": sum(int(r["open_at_stop"]) for r in mine),
            "latency": summary_ms(latency),
            "after_notify": summary_ms(added),
        }
    return {
        "generations": len(ids),
        "states": states,
        "create_seconds": round(created_s, 2),
        "connect_seconds": round(connected_at - connect_started, 2),
        "connect_errors": connect_errors,
        "ended_before_connected": ended_before_ready,
        "drain_seconds": round(drained_s, 2),
        "quiet": quiet,
        "end_transactions": len(batches),
        "largest_end_transaction": max(batches.values(), default=0),
        "baseline": summary_ms(baseline),
        "sse": by_protocol["sse"],
        "ws": by_protocol["ws"],
        "service_rss_peak_mib": round(rss.peak_mib, 1),
        "service_cpu_seconds": round(cpu_s, 2),
        "service_cpu_window_seconds": round(window_s, 2),
    }


# --- phase B: RSS with many open generations ----------------------------------------------------


async def rss_phase(dsn: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack(dsn, work / "rss", 86400.0, RSS_LIMITS)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE generations, callback_events, leadership, uploads CASCADE")
        stack.start()
        async with aiohttp.ClientSession() as session:
            await stack.ready(session)
            await asyncio.sleep(3.0)  # let startup settle
            sampler = RssSampler(stack.service.pid, RSS_EVERY_S)
            idle = statistics.median(sampler.sample() for _ in range(3))
            at_submitted = 0.0
            template = await stack.create(session)
        with sampler:
            inserted_at = time.monotonic()
            async with conn.transaction():
                status = await conn.execute(
                    "INSERT INTO generations (id, owner, source, model, family, input, deadline_at)"
                    " SELECT gen_random_uuid(), owner, source, model, family, input, deadline_at"
                    " FROM generations, generate_series(1, $2) WHERE id = $1::uuid",
                    template,
                    args.open - 1,
                )
                await conn.execute("SELECT pg_notify($1, '')", CREATED_CHANNEL)
            assert status == f"INSERT 0 {args.open - 1}", status
            # Until every one is submitted and has had a status check, then ``--hold`` s more.
            submitted_s: float | None = None
            checked_s: float | None = None
            deadline = time.monotonic() + args.submit_timeout
            while time.monotonic() < deadline and checked_s is None:
                row = await conn.fetchrow(
                    "SELECT count(*) FILTER (WHERE state = 'queued') AS queued,"
                    " count(*) FILTER (WHERE status_checks = 0) AS unchecked FROM generations"
                )
                assert row is not None
                queued, unchecked = int(row["queued"]), int(row["unchecked"])
                now = time.monotonic() - inserted_at
                if queued == 0 and submitted_s is None:
                    submitted_s, at_submitted = now, sampler.last_mib
                if unchecked == 0:
                    checked_s = now
                await asyncio.sleep(0.5)
            at_checked = sampler.last_mib
            await asyncio.sleep(args.hold)
        counts = {
            str(r["state"]): int(r["n"])
            for r in await conn.fetch("SELECT state, count(*) AS n FROM generations GROUP BY state")
        }
        status_checks = int(await conn.fetchval("SELECT coalesce(sum(status_checks), 0) FROM generations"))
    finally:
        stack.stop()
        await conn.close()
    open_count = sum(n for state, n in counts.items() if state not in TERMINAL)
    return {
        "open_generations": open_count,
        "states": counts,
        "submitted_seconds": round(submitted_s, 1) if submitted_s is not None else None,
        "checked_seconds": round(checked_s, 1) if checked_s is not None else None,
        "hold_seconds": args.hold,
        "status_checks": status_checks,
        "rss_idle_mib": round(idle, 1),
        "rss_at_submitted_mib": round(at_submitted, 1),
        "rss_at_checked_mib": round(at_checked, 1),
        "rss_final_mib": round(sampler.last_mib, 1),
        "rss_peak_mib": round(sampler.peak_mib, 1),
        "rss_samples": sampler.samples,
    }


# --- the report ---------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _row(label: str, s: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return f"{value:8.1f}" if value is not None else f"{'-':>8s}"

    return f"    {label:44s} {s['n']:6d} {ms(s['p50_ms'])} {ms(s['p99_ms'])} {ms(s['max_ms'])}"


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100, help="generations in phase A")
    parser.add_argument("--per", type=int, default=10, help="SSE and WebSocket subscribers per generation")
    parser.add_argument("--workers", type=int, default=2, help="client processes per protocol")
    parser.add_argument("--rate", type=float, default=50.0, help="generations created per second")
    parser.add_argument("--latency", type=float, default=20.0, help="simulated seconds per generation")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds for streams to end after the end")
    parser.add_argument("--open", type=int, default=10_000, help="open generations in phase B")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds of sampling once all submitted")
    parser.add_argument("--submit-timeout", type=float, default=300.0)
    parser.add_argument("--skip-rss", action="store_true", help="phase A only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    parser.add_argument("--protocols", default="sse,ws", help="which subscribers to run (sse, ws or both)")
    parser.add_argument("--py-spy", action="store_true", help="profile the service in phase A (with --keep)")
    args = parser.parse_args()

    nofile = raise_nofile()
    load_start = list(os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="kg-events-"))
    print(
        f"events benchmark: {os.cpu_count()} cores, {args.count} generations of {MODEL} "
        f"({args.latency:g} s in the simulator, created at {args.rate:g}/s), "
        f"{args.count * args.per} SSE + {args.count * args.per} WebSocket subscribers "
        f"in {2 * args.workers} client processes; open files {nofile}; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; work dir {work}",
        flush=True,
    )
    pg = EmbeddedPostgres(work / "pg")
    dsn = await pg.start()
    rss: dict[str, Any] | None = None
    try:
        from app.db.migrations import apply_migrations

        conn = await asyncpg.connect(dsn)
        await apply_migrations(conn)
        await conn.close()
        latency = await latency_phase(dsn, work, args)
        if not args.skip_rss:
            rss = await rss_phase(dsn, work, args)
    finally:
        await pg.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    sse, ws = latency["sse"], latency["ws"]
    print(
        f"  A: {latency['generations']} generations ({', '.join(latency['states'])}); created in "
        f"{latency['create_seconds']} s; {sse['subscribers']} + {ws['subscribers']} subscribers connected in "
        f"{latency['connect_seconds']} s ({latency['connect_errors']} errors), "
        f"{latency['ended_before_connected']} generations ended before that"
    )
    print(
        f"    the ends were committed in {latency['end_transactions']} transactions "
        f"(up to {latency['largest_end_transaction']} in one: callbacks are applied in batches)"
    )
    heading = f"{'n':>6s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}"
    print(f"    {'from the state change (finished_at) to ...':44s} {heading}")
    print(_row("the NOTIFY at a direct LISTEN (baseline)", latency["baseline"]))
    print(_row("the completed event at an SSE client", sse["latency"]))
    print(_row("the completed event at a WebSocket client", ws["latency"]))
    print("    from the NOTIFY at the direct LISTEN to ...")
    print(_row("the completed event at an SSE client", sse["after_notify"]))
    print(_row("the completed event at a WebSocket client", ws["after_notify"]))
    for name, s in (("SSE", sse), ("WebSocket", ws)):
        print(
            f"    {name}: {s['events']} events, {s['end_events']}/{s['subscribers']} end events, "
            f"{s['errors']} errors, {s['open_at_stop']} streams still open {args.drain:g} s after the end"
            + (f" {s['error_samples']}" if s["error_samples"] else "")
        )
    quiet = latency["quiet"]
    if quiet["seconds"]:
        print(
            f"    service while the subscribers wait ({quiet['seconds']} s, nothing changing): "
            f"CPU {quiet['service_cpu_per_s']} s/s, {quiet['db_transactions_per_s']} database transactions/s"
        )
    print(
        f"    service while subscribed: RSS peak {latency['service_rss_peak_mib']} MiB, "
        f"CPU {latency['service_cpu_seconds']} s in {latency['service_cpu_window_seconds']} s"
    )
    latency_ok = (
        all(
            s["latency"]["p99_ms"] is not None
            and s["latency"]["p99_ms"] < P99_TARGET_MS
            and s["end_events"] == s["subscribers"]
            for s in (sse, ws)
        )
        and latency["ended_before_connected"] == 0
    )
    print(
        f"    p99 SSE {sse['latency']['p99_ms']} ms, WebSocket {ws['latency']['p99_ms']} ms "
        f"(baseline {latency['baseline']['p99_ms']} ms; target < {P99_TARGET_MS:g} ms, every subscriber "
        f"gets its end)  {_verdict(latency_ok)}"
    )
    rss_ok = True
    if rss is not None:
        rss_ok = rss["rss_peak_mib"] < RSS_TARGET_MIB and rss["open_generations"] == args.open
        print(
            f"  B: {rss['open_generations']} open generations {rss['states']}: all submitted after "
            f"{rss['submitted_seconds']} s, all status-checked after {rss['checked_seconds']} s, then "
            f"{rss['hold_seconds']:g} s more ({rss['status_checks']} status checks in all)"
        )
        print(
            f"    service RSS: idle {rss['rss_idle_mib']} MiB; "
            f"all submitted {rss['rss_at_submitted_mib']} MiB; "
            f"all checked {rss['rss_at_checked_mib']} MiB; final {rss['rss_final_mib']} MiB; "
            f"peak {rss['rss_peak_mib']} MiB (target < {RSS_TARGET_MIB:g} MiB)  {_verdict(rss_ok)}"
        )
    ok = latency_ok and rss_ok
    results = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/events.py", *sys.argv[1:]]),
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_start": load_start,
            "load_average_at_end": list(os.getloadavg()),
        },
        "model": MODEL,
        "limits": {"latency": LIMITS, "rss": RSS_LIMITS},
        "parameters": {k: v for k, v in vars(args).items() if k != "keep"},
        "targets": {"p99_ms_max": P99_TARGET_MS, "rss_peak_mib_max": RSS_TARGET_MIB},
        "latency": latency,
        "rss": rss,
        "pass": ok,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "events.json").write_text(json.dumps(results, indent=2))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
