"""Sources that misbehave and storage that is switched off: the copy is retried, given up with a
clear error, or disabled, and the generation stays ``succeeded`` with KIE's URLs every time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app.kie.simulator import make_app
from tests.support.fake_kie import kie_with_results
from tests.support.stack import ServerFactory, Stack, model_of, stack_on

PNG_HEAD = b"\x89PNG\r\n\x1a\n" + b"\x00" * 56


async def mirror_of(stack: Stack, generation_id: str, until: Any, timeout: float = 20) -> dict[str, Any]:
    """The generation's JSON once ``until(body)`` holds."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, body = await stack.api("GET", f"/api/v1/generations/{generation_id}")
        assert status == 200, body
        if until(body):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"the copy never got there: {body}")


class Source:
    """A result host whose behaviour the test switches: slow, failing or fine."""

    def __init__(self) -> None:
        self.mode = "fine"
        self.requests = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.mode == "503":
            return web.Response(status=503, text="busy")
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        if self.mode == "slow":
            await asyncio.sleep(3)  # far longer than the service's MIRROR_TIMEOUT_S
        await response.write(PNG_HEAD)
        await response.write_eof()
        return response


@pytest.mark.parametrize(("mode", "error"), [("slow", "TimeoutError"), ("503", "HTTP 503")])
async def test_a_slow_or_failing_source_is_retried_until_it_works(
    mode: str,
    error: str,
    aiohttp_server: ServerFactory,
    http: aiohttp.ClientSession,
    database_url: str,
    tmp_path: Path,
) -> None:
    source = Source()
    source.mode = mode
    host = web.Application()
    host.router.add_get("/r/{name}", source.handle)
    host_server = await aiohttp_server(host)
    result_url = str(host_server.make_url("/r/result.png"))
    kie = await aiohttp_server(kie_with_results(result_url))
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, kie, MIRROR_TIMEOUT_S="0.3")

    created = await stack.create(model_of("market", "image"))
    pending = await mirror_of(stack, created["id"], lambda b: b["mirror"]["last_error"] is not None)
    assert pending["state"] == "succeeded" and pending["result_urls"] == [result_url]
    assert pending["mirror"]["state"] == "pending" and pending["files"] == []
    assert error in pending["mirror"]["last_error"]
    next_at = await stack.pool.fetchval("SELECT mirror_next_at - now() FROM generations")
    assert next_at.total_seconds() > 1, "retried later, with backoff, not at once"

    source.mode = "fine"
    await stack.pool.execute("UPDATE generations SET mirror_next_at = now()")
    done = await mirror_of(stack, created["id"], lambda b: b["mirror"]["state"] != "pending")
    assert done["mirror"]["state"] == "done" and done["mirror"]["attempts"] == 2
    assert done["files"][0]["bytes"] == len(PNG_HEAD) and done["state"] == "succeeded"


@pytest.mark.parametrize("length_known", [True, False], ids=["content-length", "chunked"])
async def test_a_result_larger_than_the_cap_fails_the_copy_and_keeps_nothing(
    length_known: bool,
    aiohttp_server: ServerFactory,
    http: aiohttp.ClientSession,
    database_url: str,
    tmp_path: Path,
) -> None:
    body = PNG_HEAD + b"\x00" * 200_000

    async def large(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        if length_known:
            response.content_length = len(body)
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        for offset in range(0, len(body), 16_384):
            await response.write(body[offset : offset + 16_384])
        await response.write_eof()
        return response

    host = web.Application()
    host.router.add_get("/big.png", large)
    host_server = await aiohttp_server(host)
    result_url = str(host_server.make_url("/big.png"))
    kie = await aiohttp_server(kie_with_results(result_url))
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, kie, MIRROR_MAX_BYTES="100000")

    created = await stack.create(model_of("market", "image"))
    failed = await mirror_of(stack, created["id"], lambda b: b["mirror"]["state"] != "pending")
    assert failed["mirror"]["state"] == "failed" and failed["mirror"]["attempts"] == 1
    assert "larger than the 100000 byte limit" in failed["mirror"]["last_error"]
    assert failed["state"] == "succeeded" and failed["result_urls"] == [result_url] and failed["files"] == []
    stored = [path for path in (tmp_path / "data" / "files").rglob("*") if path.is_file()]
    assert stored == [], "no partial copy is left behind"


async def test_storage_none_disables_copies_downloads_and_uploads(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    sim = await aiohttp_server(make_app(latency=0.1))
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, sim, STORAGE_URL="none")
    created = await stack.create(model_of("market", "image"))
    body = await mirror_of(stack, created["id"], lambda b: b["mirror"]["state"] != "pending")
    assert body["state"] == "succeeded" and body["result_urls"]
    assert body["mirror"]["state"] == "disabled" and body["files"] == []

    async with http.get(f"{stack.base_url}/health/detailed") as resp:
        storage = (await resp.json())["components"]["storage"]
    assert storage["status"] == "disabled"

    async with http.get(f"{stack.base_url}/files/{created['id']}/result-1.png?exp=1&sig=x") as resp:
        assert resp.status == 503
        problem = await resp.json()
    assert problem["error"] == "storage_unavailable" and "STORAGE_URL=none" in problem["message"]
    status, problem = await stack.api(
        "POST", "/api/v1/uploads", data=PNG_HEAD, headers={"Content-Type": "image/png"}
    )
    assert status == 503 and problem["error"] == "storage_unavailable"
    assert not (tmp_path / "data" / "files").exists()
