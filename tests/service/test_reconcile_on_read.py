"""Reconcile on read: looking at a stale open generation makes it due for a status check now,
at most once every 10 s, so the reader gets KIE's truth without waiting for the next scheduled check."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import aiohttp

from app.kie.simulator import make_app
from tests.support.stack import ServerFactory, Stack, model_of, stack_on


async def status_queries(stack: Stack) -> int:
    """How many status queries KIE has answered."""
    stats = await stack.sim_stats()
    return int(sum(v for k, v in stats.items() if k.startswith("GET /api/") and isinstance(v, int)))


async def test_a_get_of_a_stale_generation_checks_it_now_and_only_once_per_ten_seconds(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    # KIE finishes quickly but never calls back: only a status check can find out.
    kie = await aiohttp_server(make_app(latency=0.3, callbacks="drop"))
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, kie)
    created = await stack.create(model_of("market", "image"))
    gid = uuid.UUID(created["id"])
    await stack.wait_state(created["id"], {"submitted", "running"})
    # The next scheduled check is an hour away (as after a long backoff).
    await stack.pool.execute(
        "UPDATE generations SET next_check_at = now() + interval '1 hour' WHERE id = $1", gid
    )
    queries_before = await status_queries(stack)

    started = time.monotonic()
    status, body = await stack.api("GET", f"/api/v1/generations/{gid}")
    assert status == 200 and body["state"] in ("submitted", "running")
    row = await stack.wait_state(created["id"], {"succeeded"}, timeout=10)
    assert time.monotonic() - started < 10, "the reader's GET made it due at once"
    assert row["early_check_at"] is not None
    assert await status_queries(stack) > queries_before

    # Bounded: another open generation looked at twice within 10 s is made due once.
    second = await stack.create(model_of("market", "image"))
    sid = uuid.UUID(second["id"])
    await stack.wait_state(second["id"], {"submitted", "running"})
    await stack.pool.execute(
        "UPDATE generations SET next_check_at = now() + interval '1 hour', "
        "early_check_at = now() WHERE id = $1",
        sid,
    )
    await stack.api("GET", f"/api/v1/generations/{sid}")
    later = await stack.pool.fetchrow(
        "SELECT next_check_at > now() + interval '50 minutes' AS far FROM generations WHERE id = $1", sid
    )
    assert later["far"], "an early check happened less than 10 s ago: not again"
