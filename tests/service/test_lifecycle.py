"""Generations end to end: our service, a real KIE simulator server, a real database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.kie.endpoints import ENDPOINTS
from app.kie.simulator import make_app
from tests.support.stack import ServerFactory, model_of, stack_on

FAMILIES = list(ENDPOINTS)


async def simulator(aiohttp_server: ServerFactory, **options: object) -> TestServer:
    return await aiohttp_server(make_app(**{"latency": 0.3, **options}))  # type: ignore[arg-type]


@pytest.mark.parametrize("family", FAMILIES)
async def test_every_family_succeeds_with_callbacks_and_no_status_query(
    family: str, aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    sim = await simulator(aiohttp_server)
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, sim)
    model = model_of(family)
    created = await stack.create(model)
    assert created["state"] == "queued"
    row = await stack.wait_state(created["id"], {"succeeded", "failed", "timed_out"})
    assert row["state"] == "succeeded", dict(row)
    assert row["result_urls"], "a success carries the result URLs"
    assert row["task_id"]
    # The callback settled it before the first scheduled check: KIE was never polled.
    assert row["status_checks"] == 0
    stats = await stack.sim_stats()
    assert stats.get(f"POST {ENDPOINTS[family].create}") == 1
    status, body = await stack.api("GET", f"/api/v1/generations/{created['id']}")
    assert status == 200 and body["state"] == "succeeded" and body["result_urls"] == row["result_urls"]


@pytest.mark.parametrize("mode", ["drop", "duplicate", "early", "garbage", "delay"])
async def test_callback_modes_all_end_in_one_success(
    mode: str, aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    sim = await simulator(aiohttp_server, callbacks=mode)
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, sim)
    model = model_of("market", "image")
    created = await stack.create(model)
    row = await stack.wait_state(created["id"], {"succeeded", "failed", "timed_out"}, timeout=30)
    assert row["state"] == "succeeded", dict(row)
    assert (await stack.sim_stats()).get(f"POST {ENDPOINTS['market'].create}") == 1
    if mode == "drop":
        assert row["status_checks"] >= 1, "without callbacks the poller found the result"
    else:
        assert row["status_checks"] <= 1
    applied = await stack.pool.fetchval(
        "SELECT count(*) FROM callback_events WHERE outcome = 'applied:succeeded'"
    )
    assert applied <= 1


async def test_suno_three_stages_end_as_one_success(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    sim = await simulator(aiohttp_server, latency=0.6)
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, sim)
    created = await stack.create(model_of("suno"))
    row = await stack.wait_state(created["id"], {"succeeded", "failed"})
    assert row["state"] == "succeeded" and row["stage"] == "complete"
    outcomes = [
        r["outcome"] for r in await stack.pool.fetch("SELECT outcome FROM callback_events ORDER BY id")
    ]
    assert len(outcomes) == 3
    assert outcomes.count("applied:succeeded") == 1
    transitions = await stack.pool.fetchval(
        "SELECT count(*) FROM callback_events WHERE outcome LIKE 'applied:%'"
    )
    assert transitions >= 1


async def test_failures_are_reported_with_kies_message(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    sim = await simulator(aiohttp_server, fail_rate=1.0)
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, sim)
    created = await stack.create(model_of("veo"))
    row = await stack.wait_state(created["id"], {"succeeded", "failed"})
    assert row["state"] == "failed" and row["error"]
    _status, body = await stack.api("GET", f"/api/v1/generations/{created['id']}")
    assert body["state"] == "failed" and body["error"] == row["error"] and body["result_urls"] == []


async def test_insufficient_credits_fail_clearly_and_a_bad_key_marks_kie_down(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    async def no_credits(request: web.Request) -> web.Response:
        return web.json_response({"code": 402, "msg": "Credits insufficient", "data": None})

    fake = web.Application()
    fake.router.add_post(ENDPOINTS["market"].create, no_credits)
    kie = await aiohttp_server(fake)
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, kie)
    created = await stack.create(model_of("market", "image"))
    row = await stack.wait_state(created["id"], {"failed", "succeeded"})
    assert (
        row["state"] == "failed" and row["error"] == "insufficient KIE credits" and row["error_code"] == "402"
    )

    # A simulator that knows another key: 401 everywhere.
    sim = await simulator(aiohttp_server, api_key="the-right-key")
    stack.runtime.kie.base_url = str(sim.make_url("")).rstrip("/")
    second = await stack.create(model_of("market", "image"))
    await asyncio.sleep(1.5)
    row = await stack.pool.fetchrow("SELECT state, error FROM generations WHERE id = $1::uuid", second["id"])
    assert row["state"] == "queued", "a refused key keeps generations queued until it works"
    assert "API key" in (row["error"] or "")
    _status, health = await stack.api("GET", "/health/detailed")
    assert health["components"]["kie"]["status"] == "down"
    assert "401" in health["components"]["kie"]["last_error"]


async def test_rate_limits_hold_with_two_hundred_queued(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    sim = await simulator(aiohttp_server, latency=0.5, callbacks="drop")
    stack = await stack_on(
        aiohttp_server,
        http,
        database_url,
        tmp_path,
        sim,
        KIE_CREATE_LIMIT="60",
        KIE_CREATE_WINDOW_S="1",
        KIE_STATUS_RPS="40",
    )
    model = model_of("market", "image")
    created = await asyncio.gather(*(stack.create(model) for _ in range(200)))
    for generation in created:
        row = await stack.wait_state(generation["id"], {"succeeded", "failed", "timed_out"}, timeout=60)
        assert row["state"] == "succeeded"
    rates = await stack.sim_rates()
    assert rates[f"POST {ENDPOINTS['market'].create}"] <= 60
    assert rates[f"GET {ENDPOINTS['market'].status}"] <= 40
    assert (await stack.sim_stats())[f"POST {ENDPOINTS['market'].create}"] == 200
