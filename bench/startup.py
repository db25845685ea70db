"""Startup benchmark: process start to the first 200 from /health, with a database that never answers.

Compares ``python main_render.py`` with a bare aiohttp app (bench/bare_app.py)
started the same way in the same run, alternating, and prints medians and the
ratio. Also prints the service's idle RSS (its own process only; the database
is external and silent here).

    python bench/startup.py [--runs 9]

Targets: ratio at most 1.5 and the service under 1 s; idle RSS under 80 MB.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from harness import free_port

ROOT = Path(__file__).resolve().parents[1]


def silent_listener() -> tuple[socket.socket, int]:
    """A socket that accepts connections (the kernel's backlog does) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    held: list[socket.socket] = []

    def accept_forever() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept_forever, daemon=True).start()
    return sock, int(sock.getsockname()[1])


def first_200(port: int, process: subprocess.Popen[bytes], started: float, limit: float = 15.0) -> float:
    """Seconds from ``started`` until GET /health answers 200."""
    while time.perf_counter() - started < limit:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return time.perf_counter() - started
        except OSError:
            time.sleep(0.002)
        finally:
            conn.close()
    raise RuntimeError("no 200 from /health in time")


def run_once(command: list[str], env: dict[str, str], measure_rss: bool) -> tuple[float, float | None]:
    port = free_port()
    env = {**env, "PORT": str(port)}
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        seconds = first_200(port, process, started)
        rss = None
        if measure_rss:
            time.sleep(3.0)  # idle: the database keeps timing out in the background
            rss = psutil.Process(process.pid).memory_info().rss / 1024**2
        return seconds, rss
    finally:
        process.terminate()
        process.wait(15)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()

    listener, db_port = silent_listener()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "PORT", "DATA_DIR"))}
    service_env = {
        **base_env,
        "HOST": "127.0.0.1",
        "LOG_FORMAT": "json",
        "DATABASE_URL": f"postgresql://bench:bench@127.0.0.1:{db_port}/bench",
        "DATA_DIR": str(ROOT / "bench" / "results" / "data"),
    }
    service_cmd = [sys.executable, "main_render.py"]
    bare_cmd = [sys.executable, str(ROOT / "bench" / "bare_app.py")]

    service_times: list[float] = []
    bare_times: list[float] = []
    rss_samples: list[float] = []
    run_once(bare_cmd, base_env, False)  # warm the page cache for both
    run_once(service_cmd, service_env, False)
    for i in range(args.runs):
        bare_times.append(run_once(bare_cmd, base_env, False)[0])
        seconds, rss = run_once(service_cmd, service_env, measure_rss=(i < 3))
        service_times.append(seconds)
        if rss is not None:
            rss_samples.append(rss)
    listener.close()

    service_median = statistics.median(service_times)
    bare_median = statistics.median(bare_times)
    ratio = service_median / bare_median
    rss = statistics.median(rss_samples)
    result = {
        "runs": args.runs,
        "service_median_s": round(service_median, 4),
        "service_worst_s": round(max(service_times), 4),
        "bare_aiohttp_median_s": round(bare_median, 4),
        "ratio": round(ratio, 3),
        "idle_rss_mb": round(rss, 1),
    }
    print(f"start to first 200 /health, silent database, median of {args.runs} runs each")
    print(f"  service       {service_median * 1000:7.1f} ms (worst {max(service_times) * 1000:.1f} ms)")
    print(f"  bare aiohttp  {bare_median * 1000:7.1f} ms")
    print(f"  ratio         {ratio:7.2f}x   (target <= 1.5x, service < 1000 ms)")
    print(f"idle RSS of the service process: {rss:.1f} MB (target < 80 MB)")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "startup.json").write_text(json.dumps(result, indent=2))
    ok = ratio <= 1.5 and service_median < 1.0 and rss < 80
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
