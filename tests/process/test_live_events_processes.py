"""Live events reach followers on every instance: a WebSocket on the passive instance hears of a
generation the leader moved (each instance LISTENs)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from app.kie.simulator import make_app
from tests.support.processes import API_KEY, create, leader_and_passive, service_env
from tests.support.service import ServiceProcess
from tests.support.stack import ServerFactory


async def test_a_socket_on_the_passive_instance_sees_what_the_leader_did(
    aiohttp_server: ServerFactory,
    database_url: str,
    tmp_path: Path,
    services: list[ServiceProcess],
    session: aiohttp.ClientSession,
) -> None:
    kie = await aiohttp_server(make_app(latency=0.5))
    env = service_env(database_url, kie, tmp_path / "data", STORAGE_URL="none")
    leader, passive = await leader_and_passive(services, env, tmp_path, session)

    async with session.ws_connect(f"{passive.base_url}/api/v1/ws?key={API_KEY}") as socket:
        gid = await create(session, leader, "market", "image")
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            while not any(e["type"] == "completed" for e in events):
                events.append(orjson.loads((await socket.receive()).data))
    assert {e["data"]["id"] for e in events} == {gid}
    assert (await passive.role(session)) == "passive"
