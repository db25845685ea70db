"""Live events: the WebSocket (one generation or all of the caller's, resume with ?since=) and SSE's
Last-Event-ID, against the in-process service and the KIE simulator."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from app.kie.simulator import make_app
from tests.support.stack import API_KEY, ServerFactory, Stack, model_of, stack_on


async def stack_with(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path, **sim: Any
) -> Stack:
    kie = await aiohttp_server(make_app(**{"latency": 0.4, **sim}))
    return await stack_on(aiohttp_server, http, database_url, tmp_path, kie)


async def read_until_closed(
    socket: aiohttp.ClientWebSocketResponse, timeout: float = 20
) -> list[dict[str, Any]]:
    events = []
    async with asyncio.timeout(timeout):
        async for message in socket:
            assert message.type == aiohttp.WSMsgType.TEXT, message
            events.append(orjson.loads(message.data))
    return events


async def test_a_socket_follows_one_generation_to_its_end_with_the_sse_envelope(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    stack = await stack_with(aiohttp_server, http, database_url, tmp_path)
    created = await stack.create(model_of("market", "image"))
    url = f"{stack.base_url}/api/v1/ws?generation={created['id']}"
    async with http.ws_connect(url, headers={"X-API-Key": API_KEY}) as socket:
        events = await read_until_closed(socket)
    types = [e["type"] for e in events]
    # As on SSE: progress while open, one completed, then (when the copies land) one progress with files.
    end = types.index("completed")
    assert set(types[:end]) <= {"progress"} and types[end + 1 :] in ([], ["progress"]), types
    assert all(e["data"]["id"] == created["id"] for e in events)
    assert events[end]["data"]["state"] == "succeeded" and events[end]["data"]["result_urls"]
    assert events[-1]["data"]["mirror"]["state"] == "done" and events[-1]["data"]["files"]
    states = [e["data"]["state"] for e in events[: end + 1]]
    assert states == sorted(set(states), key=states.index), "each change once, in order"


async def test_a_failed_generation_ends_with_an_error_event_carrying_error_and_message(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    stack = await stack_with(aiohttp_server, http, database_url, tmp_path, fail_rate=1.0)
    created = await stack.create(model_of("market", "image"))
    async with http.ws_connect(
        f"{stack.base_url}/api/v1/ws?generation={created['id']}&key={API_KEY}"
    ) as socket:
        events = await read_until_closed(socket)
    last = events[-1]
    assert last["type"] == "error" and last["data"]["error"] and last["data"]["message"], last


async def test_a_socket_for_all_of_the_callers_generations_and_a_resume_with_since(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    stack = await stack_with(aiohttp_server, http, database_url, tmp_path)
    seen: dict[str, dict[str, Any]] = {}
    async with http.ws_connect(f"{stack.base_url}/api/v1/ws?key={API_KEY}") as socket:
        first = await stack.create(model_of("market", "image"))
        second = await stack.create(model_of("market", "image"))
        async with asyncio.timeout(20):
            while {seen.get(first["id"], {}).get("state"), seen.get(second["id"], {}).get("state")} != {
                "succeeded"
            }:
                message = await socket.receive()
                event = orjson.loads(message.data)
                seen[event["data"]["id"]] = event["data"]
        last_seen = max(data["updated_at"] for data in seen.values())
    # Disconnected: a third generation runs to its end meanwhile.
    third = await stack.create(model_of("market", "image"))
    await stack.wait_state(third["id"], {"succeeded"})
    async with http.ws_connect(
        f"{stack.base_url}/api/v1/ws", params={"key": API_KEY, "since": last_seen}
    ) as socket:
        missed: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while not any(e["data"]["id"] == third["id"] for e in missed):
                missed.append(orjson.loads((await socket.receive()).data))
    [caught_up] = [e for e in missed if e["data"]["id"] == third["id"]]
    assert caught_up["type"] == "completed" and caught_up["data"]["state"] == "succeeded", caught_up
    assert all(e["data"]["updated_at"] > last_seen for e in missed), "only what changed after since"


async def test_sse_resumes_from_last_event_id(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    stack = await stack_with(aiohttp_server, http, database_url, tmp_path)
    created = await stack.create(model_of("market", "image"))
    await stack.wait_state(created["id"], {"succeeded"})
    url = f"{stack.base_url}/api/v1/generations/{created['id']}/events"
    async with http.get(url, headers={"X-API-Key": API_KEY}) as resp:
        text = await resp.text()
    ids = [line[4:] for line in text.splitlines() if line.startswith("id: ")]
    assert ids, text
    # Reconnecting with the last id: nothing changed since, so no event is sent again.
    async with http.get(url, headers={"X-API-Key": API_KEY, "Last-Event-ID": ids[-1]}) as resp:
        again = await resp.text()
    assert "data:" not in again, again
    # With an older id (or none), the current state comes.
    async with http.get(
        url, headers={"X-API-Key": API_KEY, "Last-Event-ID": "2000-01-01T00:00:00+00:00"}
    ) as resp:
        stale = await resp.text()
    assert "event: completed" in stale or "event: progress" in stale


async def test_the_socket_needs_a_key_and_an_owned_generation(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    stack = await stack_with(aiohttp_server, http, database_url, tmp_path)
    for url, headers, status in (
        (f"{stack.base_url}/api/v1/ws", {}, 401),
        (f"{stack.base_url}/api/v1/ws?key=wrong-key-123", {}, 401),
        (f"{stack.base_url}/api/v1/ws?generation={uuid.uuid4()}", {"X-API-Key": API_KEY}, 404),
        (f"{stack.base_url}/api/v1/ws?since=yesterday", {"X-API-Key": API_KEY}, 422),
    ):
        async with http.get(url, headers=headers) as resp:
            assert resp.status == status, (url, await resp.text())
            assert resp.content_type == "application/json"
