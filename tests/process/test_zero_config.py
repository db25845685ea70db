"""The zero-configuration run, end to end: embedded PostgreSQL, built-in KIE simulator, generated key."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import aiohttp

from tests.support.service import ServiceProcess
from tests.support.stack import model_of, valid_input


async def test_zero_config_creates_a_generation_and_sees_it_succeed(
    tmp_path: Path, services: list[ServiceProcess], session: aiohttp.ClientSession
) -> None:
    data_dir = tmp_path / "data"
    service = ServiceProcess({"DATA_DIR": str(data_dir), "SIMULATOR_LATENCY_S": "0.5"}, tmp_path / "out.log")
    services.append(service.start())
    detailed = await service.wait_for(
        session,
        "/health/detailed",
        lambda b: b["components"]["database"]["status"] == "up" and b["role"] == "active",
        timeout=60,
    )
    assert detailed["components"]["kie"]["mode"] == "simulator"
    assert any(e["event"] == "kie.simulator_in_use" for e in service.log_events()), "said loudly in the log"

    key = (data_dir / "api_key").read_text().strip()
    assert (data_dir / "api_key").stat().st_mode & 0o777 == 0o600
    output = service.log_text()
    assert output.count(key) == 1, "the generated key is shown once"
    for line in output.splitlines():
        if key in line:
            assert not line.startswith("{"), "never inside a structured log line"

    model = model_of("market", "image")
    headers = {"X-API-Key": key}
    async with session.post(
        service.base_url + "/api/v1/generations",
        json={"model": model.id, "input": valid_input(model)},
        headers=headers,
    ) as resp:
        assert resp.status == 202, await resp.text()
        generation_id = (await resp.json())["id"]
    deadline = time.monotonic() + 30
    body: dict = {}
    while time.monotonic() < deadline:
        async with session.get(
            service.base_url + f"/api/v1/generations/{generation_id}?wait=5", headers=headers
        ) as resp:
            body = await resp.json()
        if body["state"] in ("succeeded", "failed", "timed_out"):
            break
        await asyncio.sleep(0.1)
    assert body["state"] == "succeeded", json.dumps(body)
    assert body["result_urls"]
    # The result really is there: the simulator serves a real file.
    async with session.get(body["result_urls"][0]) as resp:
        assert resp.status == 200 and len(await resp.read()) > 0

    service.send(signal.SIGTERM)
    assert service.wait(10) == 0
