"""A small HTTP/1.1 load generator over raw keep-alive sockets, run as its own process.

Two modes:
- closed loop (``--rate 0``): ``--connections`` clients send back to back for
  ``--seconds``; reports the throughput reached;
- open loop (``--rate R``): requests are scheduled at R per second whatever the
  answers, so a slow server shows as latency instead of as a lower rate.

Prints one JSON object: requests, errors, non-200s, seconds, rps, p50/p90/p99/max in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time


def _request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:].strip())
    if length:
        await reader.readexactly(length)
    return status


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.non_200 = 0


async def _client(
    host: str, port: int, payload: bytes, stats: Stats, deadline: float, tickets: asyncio.Queue | None
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            if tickets is not None:
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                        scheduled = await tickets.get()
                except TimeoutError:
                    return
            else:
                scheduled = time.perf_counter()
            writer.write(payload)
            try:
                status = await _read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                stats.errors += 1
                return
            # Latency counts from when the request was due, not when a client got to it.
            stats.latencies.append(time.perf_counter() - scheduled)
            if status != 200:
                stats.non_200 += 1
    finally:
        writer.close()


async def _pace(rate: float, deadline: float, tickets: asyncio.Queue) -> None:
    start = time.perf_counter()
    sent = 0
    while True:
        now = time.perf_counter()
        if now >= deadline:
            return
        due = int((now - start) * rate) - sent
        for _ in range(due):
            tickets.put_nowait(start + (sent + 1) / rate)
            sent += 1
        await asyncio.sleep(0.0005)


async def run(
    host: str, port: int, path: str, body: bytes, connections: int, seconds: float, rate: float
) -> dict:
    payload = _request(path, body)
    stats = Stats()
    started = time.perf_counter()
    deadline = started + seconds
    tickets: asyncio.Queue | None = asyncio.Queue() if rate > 0 else None
    tasks = [
        asyncio.create_task(_client(host, port, payload, stats, deadline, tickets))
        for _ in range(connections)
    ]
    if tickets is not None:
        tasks.append(asyncio.create_task(_pace(rate, deadline, tickets)))
    await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.perf_counter() - started
    lat = sorted(stats.latencies)

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 3) if lat else float("nan")

    return {
        "requests": len(lat),
        "errors": stats.errors,
        "non_200": stats.non_200,
        "seconds": round(elapsed, 3),
        "rps": round(len(lat) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(lat[-1] * 1000, 3) if lat else None,
        "mean_ms": round(statistics.fmean(lat) * 1000, 3) if lat else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/callbacks/kie")
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=0.0)
    args = parser.parse_args()
    with open(args.body_file, "rb") as handle:
        body = handle.read()
    result = asyncio.run(
        run(args.host, args.port, args.path, body, args.connections, args.seconds, args.rate)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
