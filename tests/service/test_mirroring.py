"""Results kept: every result copied into our storage (local disk, and S3 on a real S3-compatible
server), served by signed links, and a storage failure never failing a generation."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web

from app.kie.simulator import make_app
from app.kie.simulator.assets import FILES
from tests.support.fake_kie import REFRESHED, kie_with_results
from tests.support.s3 import S3Server
from tests.support.stack import API_KEY, ServerFactory, Stack, model_of, stack_on


async def finished(
    stack: Stack, generation_id: str, *, mirror: set[str], timeout: float = 20
) -> dict[str, Any]:
    """The generation's JSON once its copy reached one of ``mirror``'s states."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, body = await stack.api("GET", f"/api/v1/generations/{generation_id}")
        assert status == 200, body
        if body["mirror"]["state"] in mirror:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"mirror never reached {mirror}: {body}")


def expected_bytes(url: str) -> bytes:
    """What the simulator serves at ``url`` (its tiny real PNG, MP4 or MP3)."""
    return FILES[url.rsplit(".", 1)[-1]][1]


async def fetch(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, bytes, Any]:
    async with http.get(url, **kwargs) as resp:
        return resp.status, await resp.read(), resp.headers


@pytest.mark.parametrize(
    ("family", "output", "count"),
    [("market", "image", 1), ("market", "video", 1), ("midjourney", None, 4), ("suno", None, 2)],
    ids=["image", "video", "four-images", "suno-two-tracks"],
)
async def test_results_are_copied_in_order_and_served_by_signed_links(
    family: str,
    output: str | None,
    count: int,
    aiohttp_server: ServerFactory,
    http: aiohttp.ClientSession,
    database_url: str,
    tmp_path: Path,
) -> None:
    sim = await aiohttp_server(make_app(latency=0.2))
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, sim)
    created = await stack.create(model_of(family, output))
    body = await finished(stack, created["id"], mirror={"done", "failed"})
    assert body["state"] == "succeeded" and body["mirror"] == {
        "state": "done",
        "attempts": 1,
        "last_error": None,
    }
    assert len(body["result_urls"]) == count and len(body["files"]) == count
    for index, (source, copy) in enumerate(zip(body["result_urls"], body["files"], strict=True), 1):
        data = expected_bytes(source)
        assert copy["name"].startswith(f"result-{index}.")
        assert copy["bytes"] == len(data) and copy["sha256"] == hashlib.sha256(data).hexdigest()
        assert copy["content_type"] in ("image/png", "video/mp4", "audio/mpeg")
        status, served, headers = await fetch(http, copy["url"])  # no API key: the link is the key
        assert status == 200 and served == data
        assert headers["Content-Type"] == copy["content_type"]
        assert headers["ETag"] == f'"{copy["sha256"]}"' and int(headers["Content-Length"]) == len(data)
        assert copy["url"].startswith(f"{stack.base_url}/files/{created['id']}/{copy['name']}?")


async def test_a_signed_link_is_checked_ranges_head_and_etags_work(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    sim = await aiohttp_server(make_app(latency=0.1))
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, sim)
    created = await stack.create(model_of("market", "video"))
    copy = (await finished(stack, created["id"], mirror={"done"}))["files"][0]
    data = expected_bytes(copy["name"])
    parts = urlsplit(copy["url"])
    query = dict(parse_qsl(parts.query))
    bare = f"{stack.base_url}{parts.path}"

    forged = {**query, "sig": query["sig"][:-2] + ("AA" if not query["sig"].endswith("AA") else "BB")}
    expired_exp = str(int(query["exp"]) - 10 * 365 * 24 * 3600)
    for bad in (forged, {"exp": expired_exp, "sig": query["sig"]}, {}):
        status, body, headers = await fetch(http, f"{bare}?{urlencode(bad)}")
        assert status == 403 and headers["Content-Type"].startswith("application/json"), body
    # Another file's name under the same signature is not covered by it.
    status, _, _ = await fetch(http, f"{stack.base_url}/files/{created['id']}/result-2.mp4?{parts.query}")
    assert status == 403

    # The owner's API key opens it without a signature; another id is a 404.
    status, served, _ = await fetch(http, bare, headers={"X-API-Key": API_KEY})
    assert status == 200 and served == data
    status, _, _ = await fetch(
        http, f"{stack.base_url}/files/{uuid.uuid4()}/result-1.mp4", headers={"X-API-Key": API_KEY}
    )
    assert status == 404

    status, part, headers = await fetch(http, copy["url"], headers={"Range": "bytes=4-11"})
    assert status == 206 and part == data[4:12]
    assert headers["Content-Range"] == f"bytes 4-11/{len(data)}" and headers["Content-Length"] == "8"
    status, tail, _ = await fetch(http, copy["url"], headers={"Range": "bytes=-5"})
    assert status == 206 and tail == data[-5:]
    status, _, headers = await fetch(http, copy["url"], headers={"Range": f"bytes={len(data) + 10}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
    async with http.head(copy["url"]) as resp:
        assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(data)
        assert await resp.read() == b""
    status, _, headers = await fetch(http, copy["url"], headers={"If-None-Match": f'"{copy["sha256"]}"'})
    assert status == 304
    assert "max-age=" in headers["Cache-Control"]


async def test_a_storage_failure_leaves_the_success_and_the_copy_comes_later(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    sim = await aiohttp_server(make_app(latency=0.1))
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, sim)
    files_dir = tmp_path / "data" / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    files_dir.rmdir()
    files_dir.write_text("a file where the storage directory should be")

    created = await stack.create(model_of("market", "image"))
    row = await stack.wait_state(created["id"], {"succeeded", "failed"})
    assert row["state"] == "succeeded", "KIE succeeded: so does the generation, storage or not"
    body = await finished(stack, created["id"], mirror={"pending"}, timeout=5)
    while body["mirror"]["last_error"] is None:
        body = await finished(stack, created["id"], mirror={"pending"})
    assert body["state"] == "succeeded" and body["result_urls"] and body["files"] == []
    assert "storage" in body["mirror"]["last_error"]
    health = await (await http.get(f"{stack.base_url}/health/detailed")).json()
    assert health["components"]["storage"]["status"] == "down"

    files_dir.unlink()  # storage is back; make the retry due now rather than after its backoff
    await stack.pool.execute("UPDATE generations SET mirror_next_at = now()")
    body = await finished(stack, created["id"], mirror={"done"})
    assert len(body["files"]) == 1 and body["state"] == "succeeded"


async def test_a_source_that_is_gone_ends_the_copy_as_failed(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=404, text="no such file")

    source = web.Application()
    source.router.add_get("/gone/{name}", gone)
    source_server = await aiohttp_server(source)
    result_url = str(source_server.make_url("/gone/result.png"))
    fake = kie_with_results(result_url)
    kie = await aiohttp_server(fake)
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, kie)
    created = await stack.create(model_of("market", "image"))
    body = await finished(stack, created["id"], mirror={"failed", "done"})
    assert body["mirror"]["state"] == "failed" and body["state"] == "succeeded"
    assert "404" in body["mirror"]["last_error"]
    assert body["files"] == [] and body["result_urls"] == [result_url]
    # Before giving up, a fresh link was asked of KIE for the link that failed.
    assert fake[REFRESHED] == [result_url]


async def test_s3_storage_copies_serves_and_survives_an_outage(
    s3: S3Server,
    aiohttp_server: ServerFactory,
    http: aiohttp.ClientSession,
    database_url: str,
    tmp_path: Path,
) -> None:
    sim = await aiohttp_server(make_app(latency=0.1))
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, sim, **s3.env(s3.new_bucket()))
    created = await stack.create(model_of("midjourney"))
    body = await finished(stack, created["id"], mirror={"done", "failed"})
    assert body["mirror"]["state"] == "done" and len(body["files"]) == 4
    for copy, source in zip(body["files"], body["result_urls"], strict=True):
        status, served, _ = await fetch(http, copy["url"])
        assert status == 200 and served == expected_bytes(source)
    health = await (await http.get(f"{stack.base_url}/health/detailed")).json()
    assert (
        health["components"]["storage"]["status"] == "up" and health["components"]["storage"]["kind"] == "s3"
    )

    s3.stop()
    try:
        second = await stack.create(model_of("market", "image"))
        row = await stack.wait_state(second["id"], {"succeeded", "failed"})
        assert row["state"] == "succeeded"
        pending = await finished(stack, second["id"], mirror={"pending"})
        while pending["mirror"]["last_error"] is None:
            pending = await finished(stack, second["id"], mirror={"pending"})
        assert "storage" in pending["mirror"]["last_error"]
    finally:
        s3.start()
    await stack.pool.execute("UPDATE generations SET mirror_next_at = now()")
    done = await finished(stack, second["id"], mirror={"done"}, timeout=30)
    assert len(done["files"]) == 1
