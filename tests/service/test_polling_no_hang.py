"""Waiting never hangs: waiters wake at once, stuck tasks time out, an absent KIE is waited out."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from app.generations import service as generation_service
from app.kie.simulator import make_app
from tests.support.service import free_port
from tests.support.stack import ServerFactory, model_of, start_stack


async def test_a_waiter_is_woken_by_the_notification_when_the_callback_lands(
    aiohttp_server: ServerFactory,
    http: aiohttp.ClientSession,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With the re-read timer out of the way, only the NOTIFY of the state move can wake the waiter.
    monkeypatch.setattr(generation_service, "_FALLBACK_TICK_S", 60.0)
    sim = await aiohttp_server(make_app(latency=1.0))
    stack = await start_stack(aiohttp_server, http, database_url, str(tmp_path / "d"), str(sim.make_url("")))
    created = await stack.create(model_of("market", "image"))
    row = await stack.runtime.generations.wait_for_terminal(uuid.UUID(created["id"]), 20)
    returned_at = time.time()
    assert row is not None and row.state == "succeeded"
    event_at = await stack.pool.fetchval(
        "SELECT max(applied_at) FROM callback_events WHERE generation_id = $1", row.id
    )
    # finished_at is the applying transaction's start; applied_at is stamped in the same one.
    lag = returned_at - max(row.finished_at, event_at).timestamp()
    # Far below the 60 s timer; how fast it wakes (tens of ms) is measured by bench/lifecycle.py.
    assert lag < 5.0, f"the waiter woke {lag * 1000:.0f} ms after the callback was applied"


async def test_a_generation_stuck_at_kie_times_out_at_its_deadline(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    sim = await aiohttp_server(make_app(latency=3600))
    stack = await start_stack(
        aiohttp_server,
        http,
        database_url,
        str(tmp_path / "d"),
        str(sim.make_url("")),
        GENERATION_TIMEOUT_S="4",
    )
    created = await stack.create(model_of("market", "image"))
    started = time.monotonic()
    row = await stack.wait_state(created["id"], {"timed_out", "succeeded", "failed"}, timeout=15)
    assert row["state"] == "timed_out" and "deadline" in row["error"]
    # Deadline 4 s; the poller looks for overdue generations at least once a second.
    assert time.monotonic() - started < 4 + 6, "it ends at the deadline, not long after"
    assert row["status_checks"] >= 1, "while it lasted, KIE was asked"


async def test_kie_down_for_a_while_is_retried_until_it_answers(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    kie_port = free_port()  # nothing listens here yet
    stack = await start_stack(
        aiohttp_server, http, database_url, str(tmp_path / "d"), f"http://127.0.0.1:{kie_port}"
    )
    created = await stack.create(model_of("market", "image"))
    await asyncio.sleep(1.5)
    row = await stack.pool.fetchrow(
        "SELECT state, attempts FROM generations WHERE id = $1::uuid", created["id"]
    )
    assert row["state"] == "queued", "nothing can be submitted while KIE is unreachable"
    await aiohttp_server(make_app(latency=0.2), port=kie_port)
    row = await stack.wait_state(created["id"], {"succeeded", "failed", "timed_out"}, timeout=30)
    assert row["state"] == "succeeded"
    assert row["task_id"]


async def test_wait_for_terminal_always_returns_by_its_timeout(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    sim = await aiohttp_server(make_app(latency=3600))
    stack = await start_stack(aiohttp_server, http, database_url, str(tmp_path / "d"), str(sim.make_url("")))
    service = stack.runtime.generations
    created = await stack.create(model_of("market", "image"))
    for timeout in (0.0, 0.2, 0.7):
        started = time.monotonic()
        row = await service.wait_for_terminal(uuid.UUID(created["id"]), timeout)
        elapsed = time.monotonic() - started
        assert row is not None and row.state in ("queued", "submitted", "running")
        assert timeout <= elapsed < timeout + 2.0, "it returns by its timeout"
    started = time.monotonic()
    assert await service.wait_for_terminal(uuid.uuid4(), 5) is None
    assert time.monotonic() - started < 3.0, "an unknown id answers at once, not at the 5 s timeout"

    # With the database gone, it still returns by its timeout.
    await stack.runtime.database.pool.close()  # type: ignore[union-attr]
    started = time.monotonic()
    await service.wait_for_terminal(uuid.UUID(created["id"]), 0.5)
    assert time.monotonic() - started < 0.5 + 2.0, "it still returns by its timeout"
