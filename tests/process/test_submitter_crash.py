"""Exactly one KIE task per generation, even when the submitter dies in the middle of creating it."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from app.kie.endpoints import ENDPOINTS
from tests.support.service import ServiceProcess, free_port
from tests.support.stack import ServerFactory, model_of, valid_input

API_KEY = "crash-test-key-123456"


async def test_a_submitter_killed_mid_create_never_creates_a_second_task(
    aiohttp_server: ServerFactory,
    session: aiohttp.ClientSession,
    services: list[ServiceProcess],
    database_url: str,
    tmp_path: Path,
) -> None:
    creates: list[dict[str, Any]] = []
    create_seen = asyncio.Event()

    async def slow_create(request: web.Request) -> web.Response:
        creates.append(await request.json())
        create_seen.set()
        await asyncio.sleep(5)  # the submitter is killed while it waits for this answer
        return web.json_response({"code": 200, "msg": "success", "data": {"taskId": "crash-task-1"}})

    async def status(request: web.Request) -> web.Response:
        return web.json_response(
            {"code": 200, "msg": "success", "data": {"taskId": "crash-task-1", "state": "generating"}}
        )

    fake = web.Application()
    fake.router.add_post(ENDPOINTS["market"].create, slow_create)
    fake.router.add_get(ENDPOINTS["market"].status, status)
    kie = await aiohttp_server(fake)

    second_port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "KIE_API_KEY": "kie-key",
        "KIE_BASE_URL": str(kie.make_url("")).rstrip("/"),
        "API_KEYS": API_KEY,
        # Both build callback URLs that reach the second instance, the one that will be alive.
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{second_port}",
    }
    first = ServiceProcess({**env, "INSTANCE_ID": "first"}, tmp_path / "first.log").start()
    services.append(first)
    await first.wait_for(session, "/health", lambda b: b["role"] == "active", timeout=30)

    model = model_of("market", "image")
    async with session.post(
        first.base_url + "/api/v1/generations",
        json={"model": model.id, "input": valid_input(model)},
        headers={"X-API-Key": API_KEY},
    ) as resp:
        assert resp.status == 202
        generation_id = (await resp.json())["id"]
    async with asyncio.timeout(10):
        await create_seen.wait()
    first.send(signal.SIGKILL)
    first.wait(5)

    second = ServiceProcess(
        {**env, "INSTANCE_ID": "second", "PORT": str(second_port)}, tmp_path / "second.log"
    )
    services.append(second.start())
    await second.wait_for(session, "/health", lambda b: b["role"] == "active", timeout=30)
    await asyncio.sleep(3)  # the new leader's submitter has looked at the queue by now
    assert len(creates) == 1, "the claimed generation must not be sent to KIE again"

    # KIE finishes the task it did create and calls back on the URL it was given.
    callback_url = creates[0]["callBackUrl"]
    assert f"gid={generation_id}" in callback_url
    body = {
        "code": 200,
        "msg": "Playground task completed successfully.",
        "data": {
            "taskId": "crash-task-1",
            "state": "success",
            "resultJson": '{"resultUrls":["https://f.example/o.png"]}',
        },
    }
    async with session.post(callback_url, json=body) as resp:
        assert resp.status == 200

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        async with session.get(
            second.base_url + f"/api/v1/generations/{generation_id}", headers={"X-API-Key": API_KEY}
        ) as resp:
            generation = await resp.json()
        if generation["state"] == "succeeded":
            break
        await asyncio.sleep(0.1)
    assert generation["state"] == "succeeded", (generation, second.log_text()[-3000:])
    assert generation["task_id"] == "crash-task-1"
    assert generation["result_urls"] == ["https://f.example/o.png"]
    assert len(creates) == 1
