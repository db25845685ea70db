"""The submitter's money rules: claim only what can run, never re-send an unclear create."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web

from app.kie.endpoints import ENDPOINTS
from app.kie.simulator import make_app
from tests.support.stack import ServerFactory, model_of, start_stack


def fake_kie(create: object) -> web.Application:
    app = web.Application()
    app.router.add_post(ENDPOINTS["market"].create, create)  # type: ignore[arg-type]
    return app


async def test_a_server_error_on_create_is_never_sent_again(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    creates = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal creates
        creates += 1
        return web.json_response({"code": 500, "msg": "Server error", "data": None})

    kie = await aiohttp_server(fake_kie(flaky))
    stack = await start_stack(aiohttp_server, http, database_url, str(tmp_path / "d"), str(kie.make_url("")))
    created = await stack.create(model_of("market", "image"))
    for _ in range(100):
        row = await stack.pool.fetchrow("SELECT * FROM generations WHERE id = $1::uuid", created["id"])
        if row["submit_uncertain_at"] is not None:
            break
        await asyncio.sleep(0.05)
    assert row["submit_uncertain_at"] is not None, "a 5xx does not prove that no task exists"
    assert row["state"] == "queued" and "outcome unknown" in row["error"]
    await asyncio.sleep(2.5)  # past the submitter's polling fallback: it must leave this one alone
    assert creates == 1


async def test_a_rate_limited_429_is_retried_and_succeeds(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    sim = await aiohttp_server(make_app(latency=0.2))
    creates = 0

    async def limited_then_ok(request: web.Request) -> web.StreamResponse:
        nonlocal creates
        creates += 1
        if creates == 1:
            return web.json_response({"code": 429, "msg": "rate limited", "data": None})
        # Rejected, not queued: the second attempt goes to the real simulator.
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                str(sim.make_url(ENDPOINTS["market"].create)),
                data=await request.read(),
                headers={
                    "Authorization": request.headers["Authorization"],
                    "Content-Type": "application/json",
                },
            ) as resp,
        ):
            return web.Response(body=await resp.read(), content_type="application/json")

    fake = fake_kie(limited_then_ok)

    async def status(request: web.Request) -> web.StreamResponse:
        raise web.HTTPTemporaryRedirect(
            str(sim.make_url(ENDPOINTS["market"].status).with_query(request.query))
        )

    fake.router.add_get(ENDPOINTS["market"].status, status)
    kie = await aiohttp_server(fake)
    stack = await start_stack(aiohttp_server, http, database_url, str(tmp_path / "d"), str(kie.make_url("")))
    created = await stack.create(model_of("market", "image"))
    row = await stack.wait_state(created["id"], {"succeeded", "failed", "timed_out"}, timeout=20)
    assert row["state"] == "succeeded"
    assert creates == 2


async def test_claims_never_exceed_running_work_and_unsent_ones_go_back_on_step_down(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    received = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal received
        received += 1
        await asyncio.sleep(30)
        return web.json_response({"code": 200, "msg": "success", "data": {"taskId": f"slow-{received}"}})

    kie = await aiohttp_server(fake_kie(slow))
    stack = await start_stack(
        aiohttp_server,
        http,
        database_url,
        str(tmp_path / "d"),
        str(kie.make_url("")),
        KIE_CREATE_LIMIT="2",
        KIE_CREATE_WINDOW_S="60",
    )
    model = model_of("market", "image")
    await asyncio.gather(*(stack.create(model) for _ in range(20)))
    await asyncio.sleep(1.0)
    claimed = await stack.pool.fetchval("SELECT count(*) FROM generations WHERE submitting_at IS NOT NULL")
    assert claimed <= 8, "no more claims than the submitter can work on at once"
    assert received == 2, "the create limit holds the others back before sending"

    await stack.runtime.leader.release()  # a step-down, as on SIGTERM
    claimed = await stack.pool.fetchval("SELECT count(*) FROM generations WHERE submitting_at IS NOT NULL")
    assert claimed == 2, "only the two creates that were sent stay claimed (their outcome is unknown)"
    queued = await stack.pool.fetchval("SELECT count(*) FROM generations WHERE state = 'queued'")
    assert queued == 20


async def test_a_result_that_finished_just_before_the_deadline_is_not_thrown_away(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    sim = await aiohttp_server(make_app(latency=1.0, callbacks="drop"))
    stack = await start_stack(
        aiohttp_server,
        http,
        database_url,
        str(tmp_path / "d"),
        str(sim.make_url("")),
        GENERATION_TIMEOUT_S="2",
    )
    created = await stack.create(model_of("market", "image"))
    row = await stack.wait_state(created["id"], {"succeeded", "failed", "timed_out"}, timeout=15)
    assert row["state"] == "succeeded", "one last status query before timing out found the result"
