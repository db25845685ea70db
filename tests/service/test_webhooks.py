"""Outbound webhooks against real receivers on loopback, every delivery verified with the
Standard Webhooks reference library (``standardwebhooks``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks.webhooks import Webhook

from app.kie.simulator import make_app
from app.webhooks.signing import new_secret
from tests.support.stack import ServerFactory, Stack, model_of, stack_on

LOOPBACK_OK = {"WEBHOOK_ALLOW_INSECURE": "true", "WEBHOOK_ALLOW_PRIVATE": "true"}
FAST_RETRIES = {"WEBHOOK_RETRY_SCHEDULE": "0.2,0.2,0.2"}


class Receiver:
    """A webhook receiver: records every request; ``answer`` decides each response."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answer: Callable[[int], web.Response] = lambda n: web.Response(status=200)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return self.answer(len(self.requests))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app


async def setup(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path, **env: str
) -> tuple[Stack, Receiver, TestServer]:
    receiver = Receiver()
    server = await aiohttp_server(receiver.app())
    kie = await aiohttp_server(make_app(latency=0.2, fail_rate=float(env.pop("_FAIL", "0"))))
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, kie, **env)
    return stack, receiver, server


async def until(predicate: Callable[[], Any], timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} never happened"
        await asyncio.sleep(0.05)


async def secret_of(stack: Stack) -> str:
    status, body = await stack.api("GET", "/api/v1/webhook-secret")
    assert status == 200 and body["secret"].startswith("whsec_"), body
    return str(body["secret"])


def verified(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The payload, after the reference library checked the signature (it raises otherwise)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    payload: dict[str, Any] = Webhook(secret).verify(body, lowered)
    return payload


async def test_success_and_files_ready_arrive_signed_with_the_generation_json(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    stack, receiver, server = await setup(aiohttp_server, http, database_url, tmp_path, **LOOPBACK_OK)
    created = await stack.create(model_of("market", "image"), webhook_url=str(server.make_url("/hook")))
    await until(lambda: len(receiver.requests) >= 2, what="two events")
    secret = await secret_of(stack)
    events = [verified(secret, headers, body) for headers, body in receiver.requests]
    assert [e["type"] for e in events] == ["generation.succeeded", "generation.files_ready"]
    for event in events:
        assert event["data"]["id"] == created["id"] and event["timestamp"]
    _, current = await stack.api("GET", f"/api/v1/generations/{created['id']}")
    assert set(events[0]["data"]) == set(current), "data is the generation JSON of GET"
    assert events[0]["data"]["state"] == "succeeded" and events[1]["data"]["files"]
    ids = {headers["webhook-id"] for headers, _ in receiver.requests}
    assert len(ids) == 2 and all(i.startswith("msg_") for i in ids)
    status, body = await stack.api("GET", f"/api/v1/generations/{created['id']}/deliveries")
    assert status == 200 and {d["state"] for d in body["deliveries"]} == {"delivered"}
    assert all(d["attempts_log"][0]["status_code"] == 200 for d in body["deliveries"])


async def test_a_failure_is_retried_with_the_same_id_and_bytes_until_the_receiver_takes_it(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    stack, receiver, server = await setup(
        aiohttp_server, http, database_url, tmp_path, _FAIL="1", **LOOPBACK_OK, **FAST_RETRIES
    )
    receiver.answer = lambda n: web.Response(status=503 if n < 3 else 204)
    created = await stack.create(model_of("market", "image"), webhook_url=str(server.make_url("/hook")))
    await until(lambda: len(receiver.requests) >= 3, what="three attempts")
    secret = await secret_of(stack)
    payloads = [verified(secret, headers, body) for headers, body in receiver.requests]
    assert {p["type"] for p in payloads} == {"generation.failed"}
    assert len({h["webhook-id"] for h, _ in receiver.requests}) == 1, "one event, one id on every retry"
    assert len({body for _, body in receiver.requests}) == 1, "the same bytes on every retry"
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == 3, "delivered: no more attempts"
    _, body = await stack.api("GET", f"/api/v1/generations/{created['id']}/deliveries")
    [delivery] = body["deliveries"]
    assert delivery["state"] == "delivered" and delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["attempts_log"]] == [503, 503, 204]
    assert all(a["latency_ms"] is not None for a in delivery["attempts_log"])


async def test_redirects_are_not_followed_and_a_failed_event_can_be_requeued(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    stack, receiver, server = await setup(
        aiohttp_server, http, database_url, tmp_path, STORAGE_URL="none", **LOOPBACK_OK, **FAST_RETRIES
    )
    elsewhere = str(server.make_url("/elsewhere"))
    receiver.answer = lambda n: web.Response(status=302, headers={"Location": elsewhere})
    created = await stack.create(model_of("market", "image"), webhook_url=str(server.make_url("/hook")))
    path = f"/api/v1/generations/{created['id']}/deliveries"

    async def states() -> set[str]:
        return {d["state"] for d in (await stack.api("GET", path))[1]["deliveries"]}

    deadline = time.monotonic() + 20
    while await states() != {"failed"}:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert len(receiver.requests) == 4, "the first attempt and three retries, each a 302 not followed"
    receiver.answer = lambda n: web.Response(status=200)
    status, body = await stack.api("POST", path + "/retry")
    assert status == 200 and body == {"requeued": 1}
    await until(lambda: len(receiver.requests) == 5, what="the requeued attempt")
    deadline = time.monotonic() + 10
    while await states() != {"delivered"}:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("url", "env", "says"),
    [
        ("http://127.0.0.1:9/hook", {"WEBHOOK_ALLOW_INSECURE": "true"}, "loopback, private"),
        ("https://10.1.2.3/hook", {}, "loopback, private"),
        ("https://[::1]/hook", {}, "loopback, private"),
        ("https://169.254.169.254/latest", {}, "loopback, private"),
        ("http://example.com/hook", {}, "must be https"),
        ("ftp://example.com/hook", {}, "https URL"),
        ("https://user:pw@example.com/hook", {}, "credentials"),
        (12, {}, "string"),
    ],
)
async def test_webhook_urls_that_could_reach_inside_are_refused_at_create(
    url: Any,
    env: dict[str, str],
    says: str,
    aiohttp_server: ServerFactory,
    http: aiohttp.ClientSession,
    database_url: str,
    tmp_path: Path,
) -> None:
    stack, _, _ = await setup(aiohttp_server, http, database_url, tmp_path, **env)
    status, body = await stack.api(
        "POST",
        "/api/v1/generations",
        json={"model": "google/nano-banana", "input": {"prompt": "a cat"}, "webhook_url": url},
    )
    assert status == 422 and body["field"] == "webhook_url" and says in body["message"], body
    assert await stack.pool.fetchval("SELECT count(*) FROM generations") == 0


async def test_a_host_that_turns_private_after_create_is_refused_at_delivery(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    # DNS rebinding: the URL was fine when the generation was created; at delivery it is loopback.
    stack, receiver, server = await setup(
        aiohttp_server,
        http,
        database_url,
        tmp_path,
        STORAGE_URL="none",
        WEBHOOK_ALLOW_INSECURE="true",
        **FAST_RETRIES,
    )
    kie_slow = await stack.create(model_of("market", "image"))
    await stack.pool.execute(
        "UPDATE generations SET webhook_url = $2 WHERE id = $1::uuid",
        kie_slow["id"],
        str(server.make_url("/hook")),
    )
    path = f"/api/v1/generations/{kie_slow['id']}/deliveries"
    deadline = time.monotonic() + 20
    while True:
        deliveries = (await stack.api("GET", path))[1]["deliveries"]
        if deliveries and deliveries[0]["state"] == "failed":
            break
        assert time.monotonic() < deadline, deliveries
        await asyncio.sleep(0.05)
    assert receiver.requests == [], "nothing was sent to the private address"
    assert all("loopback, private" in a["error"] for a in deliveries[0]["attempts_log"])


async def test_webhook_secret_from_the_environment_signs_every_delivery(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    secret = new_secret()
    stack, receiver, server = await setup(
        aiohttp_server, http, database_url, tmp_path, WEBHOOK_SECRET=secret, STORAGE_URL="none", **LOOPBACK_OK
    )
    assert await secret_of(stack) == secret
    await stack.create(model_of("market", "image"), webhook_url=str(server.make_url("/hook")))
    await until(lambda: len(receiver.requests) >= 1, what="the event")
    headers, body = receiver.requests[0]
    assert verified(secret, headers, body)["type"] == "generation.succeeded"
    with pytest.raises(Exception):  # noqa: B017 - the library's own verification error
        verified(new_secret(), headers, body)
    assert orjson.loads(body)["data"]["state"] == "succeeded"
