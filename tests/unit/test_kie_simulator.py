"""The KIE simulator over real HTTP: every family's create, status and callback, the failure modes,
the served files, the counters and the command line.

What "right" means comes from docs/kie-api.md; every status answer and callback the simulator
produces must parse with our own ``parse_callback`` to the right task id, state and URLs.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.kie.callbacks import ParsedCallback, parse_callback
from app.kie.endpoints import CREDITS_PATH, DOWNLOAD_URL_PATH, ENDPOINTS
from app.kie.families import FAILED, FAMILIES, RUNNING, SUCCEEDED
from app.kie.parse import parse_status
from app.kie.signature import INVALID, VALID, check_signature
from app.kie.simulator import SIM_STATE, make_app

LATENCY = 0.2
AUTH = {"Authorization": "Bearer test-key"}
ROOT = Path(__file__).resolve().parents[1]

BODIES: dict[str, dict[str, Any]] = {
    "market": {"model": "google/nano-banana", "input": {"prompt": "a cat", "aspect_ratio": "1:1"}},
    "veo": {"prompt": "a cat", "model": "veo3_fast", "aspect_ratio": "16:9"},
    "runway": {"prompt": "a cat", "duration": 5, "quality": "720p"},
    "aleph": {"prompt": "make it rain", "videoUrl": "https://example.com/in.mp4"},
    "suno": {"prompt": "a song about cats", "model": "V4_5", "customMode": False, "instrumental": False},
    "4o": {"prompt": "a cat", "size": "1:1"},
    "flux_kontext": {"prompt": "a cat", "model": "flux-kontext-pro"},
    "midjourney": {"prompt": "a cat", "taskType": "mj_txt2img"},
    "luma": {"prompt": "make it night", "videoUrl": "https://example.com/in.mp4"},
}

SimulatorFactory = Callable[..., Awaitable[TestClient]]
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@dataclass
class Received:
    """One POST the receiver got."""

    at: float
    path: str
    body: bytes
    headers: dict[str, str]

    def parsed(self) -> ParsedCallback:
        return parse_callback(self.body, headers=self.headers)


class Receiver:
    """A real HTTP server standing in for our callback endpoint; ``/fail`` always answers 500."""

    def __init__(self) -> None:
        self.posts: list[Received] = []
        self.base = ""

    @property
    def url(self) -> str:
        return f"{self.base}/cb?gid=g1&token=t1"

    @property
    def failing_url(self) -> str:
        return f"{self.base}/fail"

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append(
            Received(time.monotonic(), request.path, await request.read(), dict(request.headers))
        )
        return web.json_response({"ok": True}, status=500 if request.path == "/fail" else 200)

    def for_task(self, task_id: str) -> list[Received]:
        return [post for post in self.posts if post.parsed().task_id == task_id]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"receiver: condition not met; got {len(self.posts)} posts"
            await asyncio.sleep(0.01)


@pytest.fixture
async def receiver(aiohttp_server: ServerFactory) -> Receiver:
    recorder = Receiver()
    app = web.Application()
    app.router.add_post("/cb", recorder.handle)
    app.router.add_post("/fail", recorder.handle)
    server = await aiohttp_server(app)
    recorder.base = str(server.make_url("")).rstrip("/")
    return recorder


@pytest.fixture
def simulator(aiohttp_client: Callable[[web.Application], Awaitable[TestClient]]) -> SimulatorFactory:
    async def start(**options: Any) -> TestClient:
        options.setdefault("latency", LATENCY)
        options.setdefault("seed", 7)
        return await aiohttp_client(make_app(**options))

    return start


async def create(
    client: TestClient, family: str, callback_url: str | None = None, **extra: Any
) -> tuple[str, float]:
    """Create a task; ``(task_id, monotonic time the answer arrived)``."""
    body = {**BODIES[family], **extra}
    if callback_url:
        body["callBackUrl"] = callback_url
    response = await client.post(ENDPOINTS[family].create, json=body, headers=AUTH)
    envelope = await response.json()
    answered = time.monotonic()
    assert response.status == 200 and envelope == {"code": 200, "msg": "success", "data": envelope["data"]}, (
        family,
        envelope,
    )
    task_id = envelope["data"]["taskId"]
    assert isinstance(task_id, str) and task_id
    return task_id, answered


async def status(client: TestClient, family: str, task_id: str) -> dict[str, Any]:
    response = await client.get(ENDPOINTS[family].status, params={"taskId": task_id}, headers=AUTH)
    assert response.status == 200
    return await response.json()


async def poll_terminal(
    client: TestClient, family: str, task_id: str, timeout: float = 3.0
) -> dict[str, Any]:
    """Poll until the status answer parses to a terminal state; that answer."""
    deadline = time.monotonic() + timeout
    while True:
        envelope = await status(client, family, task_id)
        if parse_status(family, envelope).state in (SUCCEEDED, FAILED):
            return envelope
        assert time.monotonic() < deadline, f"{family} {task_id} never finished: {envelope}"
        await asyncio.sleep(0.02)


# --- every family, through status and through callbacks ----------------------------------------

# Spot checks of each family's own status shape (docs/kie-api.md, "Status-query results").
STATUS_SHAPES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "market": lambda d: (
        d["state"] == "success"
        and isinstance(d["resultJson"], str)
        and orjson.loads(d["resultJson"])["resultUrls"]
        and d["completeTime"] > d["createTime"] > 10**12
    ),
    "veo": lambda d: (
        d["successFlag"] == 1
        and d["response"]["resultUrls"]
        and re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", d["createTime"])
    ),
    "runway": lambda d: d["state"] == "success" and d["videoInfo"]["videoUrl"] and d["videoInfo"]["imageUrl"],
    # Aleph's record-info is not Runway's: successFlag, and the video apart from its thumbnail.
    "aleph": lambda d: (
        d["successFlag"] == 1
        and d["errorCode"] == 0
        and d["response"]["resultVideoUrl"].endswith(".mp4")
        and d["response"]["resultImageUrl"].endswith(".png")
    ),
    "suno": lambda d: (
        d["status"] == "SUCCESS"
        and len(d["response"]["sunoData"]) == 2
        and all(
            t["audioUrl"] and t["streamAudioUrl"] and t["imageUrl"] and t["title"]
            for t in d["response"]["sunoData"]
        )
    ),
    "4o": lambda d: (
        d["successFlag"] == 1
        and d["status"] == "SUCCESS"
        and d["progress"] == "1.00"
        and d["response"]["resultUrls"]
    ),
    "flux_kontext": lambda d: d["successFlag"] == 1 and d["response"]["resultImageUrl"],
    "midjourney": lambda d: (
        d["successFlag"] == 1
        and all(set(item) == {"resultUrl"} for item in d["resultInfoJson"]["resultUrls"])
    ),
    "luma": lambda d: d["successFlag"] == 1 and d["response"]["resultUrls"],
}


async def test_every_family_creates_and_polls_to_success(
    simulator: SimulatorFactory, receiver: Receiver
) -> None:
    client = await simulator(callbacks="drop")
    files = str(client.make_url("/_sim/files/"))

    async def one(family: str) -> None:
        task_id, _ = await create(client, family, receiver.url)
        first = parse_status(family, await status(client, family, task_id), task_id)
        assert (first.task_id, first.state) == (task_id, RUNNING), family
        final = await poll_terminal(client, family, task_id)
        parsed = parse_status(family, final, task_id)
        assert (parsed.task_id, parsed.state) == (task_id, SUCCEEDED), (family, final)
        assert parsed.result_urls and all(url.startswith(files) for url in parsed.result_urls), family
        assert final["code"] == 200 and STATUS_SHAPES[family](final["data"]), (family, final)

    assert set(FAMILIES) == set(ENDPOINTS) == set(BODIES)
    await asyncio.gather(*(one(family) for family in FAMILIES))


async def test_status_vocabularies_progress_over_time(
    simulator: SimulatorFactory, receiver: Receiver
) -> None:
    latency = 0.4
    client = await simulator(latency=latency, callbacks="drop")
    words: dict[str, list[str]] = {"market": [], "runway": [], "suno": [], "4o": [], "veo": []}
    progress: list[float] = []

    async def sample(family: str, task_id: str) -> None:
        data = (await status(client, family, task_id))["data"]
        word = str(data.get("state") or data.get("status") or data.get("successFlag"))
        if not words[family] or words[family][-1] != word:
            words[family].append(word)
        if family == "4o":
            progress.append(float(data["progress"]))

    tasks = {}
    for family in words:  # the first sample right after create: the opening words are short-lived
        tasks[family] = (await create(client, family, receiver.url))[0]
        await sample(family, tasks[family])
    deadline = time.monotonic() + latency * 1.5
    while time.monotonic() < deadline:
        for family, task_id in tasks.items():
            await sample(family, task_id)
        await asyncio.sleep(0.01)
    assert words["market"][0] == "waiting" and words["market"][-2:] == ["generating", "success"]
    assert set(words["market"]) <= {"waiting", "queuing", "generating", "success"}
    assert words["runway"][0] == "wait" and words["runway"][-2:] == ["generating", "success"]
    assert set(words["runway"]) <= {"wait", "queueing", "generating", "success"}
    assert words["suno"] == ["PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS", "SUCCESS"]
    assert words["4o"] == ["GENERATING", "SUCCESS"] and words["veo"] == ["0", "1"]
    assert progress == sorted(progress) and progress[0] < 0.5 and progress[-1] == 1.0


async def test_every_family_callback_parses(simulator: SimulatorFactory, receiver: Receiver) -> None:
    client = await simulator()

    async def one(family: str) -> None:
        task_id, _ = await create(client, family, receiver.url)
        await receiver.wait_for(
            lambda: any(post.parsed().state == SUCCEEDED for post in receiver.for_task(task_id))
        )
        parsed = receiver.for_task(task_id)[-1].parsed()
        assert (parsed.task_id, parsed.state) == (task_id, SUCCEEDED), family
        polled = parse_status(family, await poll_terminal(client, family, task_id), task_id)
        assert parsed.result_urls and set(parsed.result_urls) <= set(polled.result_urls), family

    await asyncio.gather(*(one(family) for family in FAMILIES))
    assert all(post.path == "/cb" for post in receiver.posts)
    shapes = {orjson.loads(post.body)["msg"] for post in receiver.posts}
    assert "Playground task completed successfully." in shapes


async def test_family_specific_callback_fields(simulator: SimulatorFactory, receiver: Receiver) -> None:
    client = await simulator()
    ids = {
        family: (await create(client, family, receiver.url))[0]
        for family in ("runway", "aleph", "4o", "flux_kontext")
    }
    veo_ids = [(await create(client, "veo", receiver.url))[0] for _ in range(2)]
    await receiver.wait_for(lambda: len(receiver.posts) == 6)
    body = {post.parsed().task_id: orjson.loads(post.body) for post in receiver.posts}
    assert (
        body[ids["runway"]]["data"]["task_id"] == ids["runway"] and body[ids["runway"]]["data"]["video_url"]
    )
    assert body[ids["aleph"]]["taskId"] == ids["aleph"] and body[ids["aleph"]]["data"]["result_video_url"]
    assert body[ids["4o"]]["data"]["info"]["result_urls"]
    assert body[ids["flux_kontext"]]["data"]["info"]["originImageUrl"]
    # Veo: info.resultUrls is a list on one task and a JSON string of a list on the next.
    forms = {type(body[task_id]["data"]["info"]["resultUrls"]) for task_id in veo_ids}
    assert forms == {list, str}


async def test_suno_sends_text_first_complete_in_order(
    simulator: SimulatorFactory, receiver: Receiver
) -> None:
    client = await simulator(latency=0.3)
    task_id, _ = await create(client, "suno", receiver.url)
    await receiver.wait_for(lambda: len(receiver.for_task(task_id)) == 3)
    posts = receiver.for_task(task_id)
    parsed = [post.parsed() for post in posts]
    assert [p.stage for p in parsed] == ["text", "first", "complete"]
    assert [p.state for p in parsed] == [RUNNING, RUNNING, SUCCEEDED]
    assert posts[0].at < posts[1].at < posts[2].at
    first = orjson.loads(posts[1].body)["data"]["data"]
    assert all(track["audio_url"] == "" and track["stream_audio_url"] for track in first)
    complete = orjson.loads(posts[2].body)["data"]["data"]
    assert parsed[2].result_urls == [track["audio_url"] for track in complete]
    assert all(track["id"] != task_id for track in complete)


async def test_fail_rate_one_fails_every_family(simulator: SimulatorFactory, receiver: Receiver) -> None:
    client = await simulator(fail_rate=1.0)

    async def one(family: str) -> None:
        task_id, _ = await create(client, family, receiver.url)
        polled = parse_status(family, await poll_terminal(client, family, task_id), task_id)
        assert (polled.task_id, polled.state) == (task_id, FAILED), family
        assert polled.error and not polled.result_urls, family
        await receiver.wait_for(lambda: any(p.parsed().state == FAILED for p in receiver.for_task(task_id)))
        called = receiver.for_task(task_id)[-1].parsed()
        assert (called.task_id, called.state, called.result_urls) == (task_id, FAILED, []), family
        assert called.error, family

    await asyncio.gather(*(one(family) for family in FAMILIES))
    payloads = [orjson.loads(post.body) for post in receiver.posts]
    market = [p for p in payloads if isinstance(p["data"], dict) and p["data"].get("state") == "fail"]
    assert (
        market and market[0]["code"] == 501 and market[0]["data"]["failCode"] and market[0]["data"]["failMsg"]
    )
    suno = [
        p["data"]["callbackType"]
        for p in payloads
        if isinstance(p["data"], dict) and "callbackType" in p["data"]
    ]
    assert suno == ["text", "error"]
    assert any(p["data"] is None and p["taskId"] for p in payloads)  # aleph's failure shape


# --- callback modes ------------------------------------------------------------------------------


async def test_drop_never_calls_back(simulator: SimulatorFactory, receiver: Receiver) -> None:
    client = await simulator(callbacks="drop")
    task_id, _ = await create(client, "market", receiver.url)
    assert parse_status("market", await poll_terminal(client, "market", task_id), task_id).state == SUCCEEDED
    await asyncio.sleep(LATENCY)
    assert receiver.posts == []
    assert (await (await client.get("/_sim/stats")).json())["callbacks_sent"] == 0


async def test_duplicate_sends_the_terminal_callback_twice(
    simulator: SimulatorFactory, receiver: Receiver
) -> None:
    client = await simulator(callbacks="duplicate")
    task_id, _ = await create(client, "suno", receiver.url)
    await receiver.wait_for(lambda: len(receiver.for_task(task_id)) == 4)
    await asyncio.sleep(0.05)
    posts = receiver.for_task(task_id)
    assert [p.parsed().stage for p in posts] == ["text", "first", "complete", "complete"]
    assert posts[2].body == posts[3].body


async def test_early_delivers_before_the_create_answer(
    simulator: SimulatorFactory, receiver: Receiver
) -> None:
    client = await simulator(callbacks="early", latency=1.0)
    for family in ("market", "suno", "veo"):
        task_id, answered = await create(client, family, receiver.url)
        posts = receiver.for_task(task_id)  # no waiting: they must be here already
        assert posts and posts[-1].at < answered, family
        assert posts[-1].parsed().state == SUCCEEDED, family
        assert parse_status(family, await status(client, family, task_id), task_id).state == SUCCEEDED, family
    assert [p.parsed().stage for p in receiver.posts if p.parsed().stage] == ["text", "first", "complete"]


async def test_garbage_precedes_the_real_callback(simulator: SimulatorFactory, receiver: Receiver) -> None:
    client = await simulator(callbacks="garbage")
    task_id, _ = await create(client, "flux_kontext", receiver.url)
    await receiver.wait_for(lambda: len(receiver.posts) == 2)
    garbage, real = receiver.posts
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(garbage.body)
    assert garbage.parsed().task_id is None and garbage.parsed().state is None
    assert (real.parsed().task_id, real.parsed().state) == (task_id, SUCCEEDED)
    stats = await (await client.get("/_sim/stats")).json()
    assert (stats["callbacks_garbage"], stats["callbacks_sent"]) == (1, 1)


async def test_delay_calls_back_after_status_says_done(
    simulator: SimulatorFactory, receiver: Receiver
) -> None:
    client = await simulator(callbacks="delay")
    task_id, answered = await create(client, "4o", receiver.url)
    assert parse_status("4o", await poll_terminal(client, "4o", task_id), task_id).state == SUCCEEDED
    assert receiver.posts == []
    await receiver.wait_for(lambda: len(receiver.posts) == 1)
    assert receiver.posts[0].at - answered >= 2 * LATENCY - 0.05
    assert receiver.posts[0].parsed().task_id == task_id


async def test_failed_deliveries_are_retried_then_abandoned(
    simulator: SimulatorFactory, receiver: Receiver
) -> None:
    client = await simulator()
    task_id, _ = await create(client, "luma", receiver.failing_url)
    await receiver.wait_for(lambda: len(receiver.posts) == 3)
    await asyncio.sleep(0.1)
    assert len(receiver.posts) == 3  # one attempt and two retries, then KIE gives up
    stats = await (await client.get("/_sim/stats")).json()
    assert (stats["callbacks_sent"], stats["callbacks_failed"], stats["callbacks_abandoned"]) == (0, 3, 1)
    # Luma's successFlag 4: generated, but the callback failed; still a success for us.
    envelope = await status(client, "luma", task_id)
    assert envelope["data"]["successFlag"] == 4 and parse_status("luma", envelope).state == SUCCEEDED


async def test_unreachable_callback_url_does_not_hurt_the_server(simulator: SimulatorFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/cb"  # bound, not listening: refused
        client = await simulator(latency=0.05, callbacks="early")
        task_id, _ = await create(client, "midjourney", dead)
        assert (
            parse_status("midjourney", await status(client, "midjourney", task_id), task_id).state
            == SUCCEEDED
        )
        deadline = time.monotonic() + 3
        while (stats := await (await client.get("/_sim/stats")).json())["callbacks_abandoned"] == 0:
            assert time.monotonic() < deadline, stats  # the background retries must run out
            await asyncio.sleep(0.02)
    assert (stats["callbacks_sent"], stats["callbacks_failed"]) == (0, 3)


async def test_webhook_signature_verifies(simulator: SimulatorFactory, receiver: Receiver) -> None:
    client = await simulator(webhook_hmac_key="hmac-key")
    task_id, _ = await create(client, "runway", receiver.url)
    await receiver.wait_for(lambda: len(receiver.posts) == 1)
    post = receiver.posts[0]
    assert post.parsed().task_id == task_id
    assert check_signature("hmac-key", task_id, post.headers) == (VALID, None)
    assert check_signature("another-key", task_id, post.headers)[0] == INVALID


async def test_pending_deliveries_are_cancelled_on_cleanup(
    aiohttp_client: Callable[[web.Application], Awaitable[TestClient]], receiver: Receiver
) -> None:
    app = make_app(latency=5.0)
    client = await aiohttp_client(app)
    await create(client, "market", receiver.url)
    assert len(app[SIM_STATE].deliveries) == 1
    await client.close()
    assert app[SIM_STATE].deliveries == set()
    assert receiver.posts == []


# --- envelopes: rate limits, keys, unknown tasks, validation --------------------------------------


async def test_rate_limit_rate_one_answers_429(simulator: SimulatorFactory) -> None:
    client = await simulator(rate_limit_rate=1.0)
    response = await client.post(ENDPOINTS["veo"].create, json=BODIES["veo"], headers=AUTH)
    assert response.status == 200
    assert await response.json() == {"code": 429, "msg": "rate limited", "data": None}
    assert (await status(client, "veo", "a" * 32))["code"] == 429
    assert (await (await client.get(CREDITS_PATH, headers=AUTH)).json())["code"] == 200


async def test_api_key_mismatch_answers_401(simulator: SimulatorFactory) -> None:
    client = await simulator(api_key="test-key")
    for headers in ({"Authorization": "Bearer wrong"}, {}, {"Authorization": "test-key"}):
        response = await client.post(ENDPOINTS["4o"].create, json=BODIES["4o"], headers=headers)
        envelope = await response.json()
        assert response.status == 200 and envelope["code"] == 401 and envelope["data"] is None
        assert (await (await client.get(CREDITS_PATH, headers=headers)).json())["code"] == 401
    await create(client, "4o")
    open_client = await simulator()
    any_key = {"Authorization": "Bearer whatever"}
    assert (await (await open_client.get(CREDITS_PATH, headers=any_key)).json())["code"] == 200


async def test_unknown_task_is_record_is_null(simulator: SimulatorFactory) -> None:
    client = await simulator()
    assert await status(client, "market", "task_nope_1") == {
        "code": 422,
        "msg": "record is null",
        "data": None,
    }
    veo_id, _ = await create(client, "veo")
    assert (await status(client, "midjourney", veo_id))["code"] == 422  # records are per family
    assert (await status(client, "veo", veo_id))["code"] == 200


async def test_create_validation(simulator: SimulatorFactory) -> None:
    client = await simulator()

    async def code(family: str, **kwargs: Any) -> int:
        response = await client.post(ENDPOINTS[family].create, headers=AUTH, **kwargs)
        return (await response.json())["code"]

    assert await code("veo", data=b"not json") == 400
    assert await code("veo", json=["a", "list"]) == 400
    assert await code("suno", json=BODIES["suno"]) == 422  # callBackUrl is required for Suno
    assert await code("market", json={"input": {"prompt": "x"}}) == 422
    assert await code("market", json={"model": "google/nano-banana", "input": "x"}) == 422
    assert await code("veo", json={**BODIES["veo"], "callBackUrl": "ftp://x"}) == 422
    assert await code("veo", json=BODIES["veo"]) == 200  # optional elsewhere


async def test_creates_kie_documents_as_refused_are_refused(simulator: SimulatorFactory) -> None:
    client = await simulator()

    async def code(family: str, body: dict[str, Any]) -> int:
        response = await client.post(ENDPOINTS[family].create, headers=AUTH, json=body)
        return (await response.json())["code"]

    speech = {"model": "elevenlabs/text-to-speech-multilingual-v2", "input": {"text": "hi"}}
    assert await code("market", speech) == 200
    assert await code("market", {**speech, "input": {"text": "hi", "language_code": "en"}}) == 422
    turbo = {"model": "elevenlabs/text-to-speech-turbo-2-5", "input": {"text": "hi", "language_code": "en"}}
    assert await code("market", turbo) == 200
    reference = {**BODIES["veo"], "generationType": "REFERENCE_2_VIDEO"}
    assert await code("veo", {**reference, "model": "veo3"}) == 422
    assert await code("veo", {**reference, "model": "veo3_lite"}) == 200
    assert await code("4o", {"prompt": "a cat"}) == 422  # size is required


@pytest.mark.parametrize("refusal", [400, 422, 433, 451, 501, 505])
async def test_create_code_answers_every_create_with_that_refusal(
    simulator: SimulatorFactory, refusal: int
) -> None:
    client = await simulator(create_code=refusal)
    for family in FAMILIES:
        body = {**BODIES[family], "callBackUrl": "https://gateway.example/cb"}
        envelope = await (await client.post(ENDPOINTS[family].create, headers=AUTH, json=body)).json()
        assert envelope["code"] == refusal and envelope["msg"] and envelope["data"] is None, family
    assert not client.app[SIM_STATE].tasks, "a refused create makes no task"


async def test_task_ids_take_several_forms(simulator: SimulatorFactory) -> None:
    client = await simulator()
    market, _ = await create(client, "market", model="kling-2.6/image-to-video")
    assert re.fullmatch(r"task_kling-2\.6_\d{13,}", market)
    assert re.fullmatch(r"[0-9a-f]{32}", (await create(client, "veo"))[0])
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        (await create(client, "runway"))[0],
    )
    final = await poll_terminal(client, "market", market)
    assert all(url.endswith(".mp4") for url in parse_status("market", final).result_urls)  # a video model


async def test_text_models_return_a_result_object(simulator: SimulatorFactory) -> None:
    client = await simulator()
    task_id, _ = await create(client, "market", model="elevenlabs/speech-to-text")
    parsed = parse_status("market", await poll_terminal(client, "market", task_id), task_id)
    assert parsed.state == SUCCEEDED and parsed.result_urls == [] and parsed.result_object["text"]


# --- files, credits, download links ---------------------------------------------------------------


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.append((kind, body))
        offset += 12 + length
    assert offset == len(data)
    return chunks


def _mp4_boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    boxes, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        assert size >= 8 and offset + size <= len(data)
        boxes.append((kind, data[offset + 8 : offset + size]))
        offset += size
    assert offset == len(data)
    return boxes


def _mp3_frames(data: bytes) -> int:
    frames, offset = 0, 0
    bitrates = {1: 32, 9: 128}
    while offset < len(data):
        header = int.from_bytes(data[offset : offset + 4], "big")
        assert header >> 21 == 0x7FF, "frame sync"
        assert (header >> 19) & 3 == 3 and (header >> 17) & 3 == 1, "MPEG-1 Layer III"
        size = 144 * bitrates[(header >> 12) & 0xF] * 1000 // 44100 + ((header >> 9) & 1)
        offset += size
        frames += 1
    assert offset == len(data)
    return frames


async def test_served_files_are_real_and_downloadable(
    simulator: SimulatorFactory, receiver: Receiver
) -> None:
    client = await simulator(latency=0.05)
    runway, _ = await create(client, "runway")
    suno, _ = await create(client, "suno", receiver.url)
    runway_status = parse_status("runway", await poll_terminal(client, "runway", runway), runway)
    suno_status = parse_status("suno", await poll_terminal(client, "suno", suno), suno)
    urls = runway_status.result_urls + suno_status.result_urls
    urls += [url for url in (runway_status.cover_url, suno_status.cover_url) if url]  # the covers
    seen = {}
    for url in urls:
        async with client.session.get(url) as response:
            assert response.status == 200
            seen[response.content_type] = await response.read()
    assert set(seen) == {"video/mp4", "image/png", "audio/mpeg"}

    chunks = _png_chunks(seen["image/png"])
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (width, height, depth, colour) == (8, 8, 8, 2)
    assert len(zlib.decompress(chunks[1][1])) == height * (1 + 3 * width)

    boxes = _mp4_boxes(seen["video/mp4"])
    assert [kind for kind, _ in boxes] == [b"ftyp", b"moov", b"mdat"]
    assert boxes[0][1][:4] == b"isom"
    assert [kind for kind, _ in _mp4_boxes(boxes[1][1])] == [b"mvhd"]

    assert _mp3_frames(seen["audio/mpeg"]) >= 10
    assert (await client.get("/_sim/files/x.exe")).status == 404


async def test_credits_and_download_url(simulator: SimulatorFactory) -> None:
    client = await simulator(latency=0.05)
    assert await (await client.get(CREDITS_PATH, headers=AUTH)).json() == {
        "code": 200,
        "msg": "success",
        "data": 1_000_000,
    }
    task_id, _ = await create(client, "4o")
    url = parse_status("4o", await poll_terminal(client, "4o", task_id), task_id).result_urls[0]
    answer = await (await client.post(DOWNLOAD_URL_PATH, json={"url": url}, headers=AUTH)).json()
    assert answer["code"] == 200 and answer["data"] != url and answer["data"].startswith(url + "?stamp=")
    async with client.session.get(answer["data"]) as response:
        assert response.status == 200 and response.content_type == "image/png"
    foreign = await client.post(DOWNLOAD_URL_PATH, json={"url": "https://example.com/a.png"}, headers=AUTH)
    assert (await foreign.json())["code"] == 422


async def test_public_base_url_builds_result_urls(simulator: SimulatorFactory) -> None:
    client = await simulator(latency=0.05, public_base_url="https://sim.example.com/")
    task_id, _ = await create(client, "midjourney")
    urls = parse_status("midjourney", await poll_terminal(client, "midjourney", task_id), task_id).result_urls
    assert len(urls) == 4 and all(url.startswith("https://sim.example.com/_sim/files/") for url in urls)
    answer = await (await client.post(DOWNLOAD_URL_PATH, json={"url": urls[0]}, headers=AUTH)).json()
    assert answer["code"] == 200


# --- the simulator's own endpoints and the command line --------------------------------------------


async def test_stats_rates_and_reset(simulator: SimulatorFactory, receiver: Receiver) -> None:
    client = await simulator(latency=0.05)
    task_id, _ = await create(client, "market", receiver.url)
    await create(client, "market")
    for _ in range(5):
        await status(client, "market", task_id)
    await client.get(CREDITS_PATH, headers=AUTH)
    await receiver.wait_for(lambda: len(receiver.posts) == 1)
    stats = await (await client.get("/_sim/stats")).json()
    assert stats["POST /api/v1/jobs/createTask"] == 2
    assert stats["GET /api/v1/jobs/recordInfo"] == 5
    assert stats["GET /api/v1/chat/credit"] == 1
    assert stats["GET /_sim/stats"] == 1  # every request counts, this one too
    assert (stats["callbacks_sent"], stats["callbacks_failed"]) == (1, 0)
    rates = await (await client.get("/_sim/rates")).json()
    assert rates["GET /api/v1/jobs/recordInfo"] == 5 and rates["POST /api/v1/jobs/createTask"] == 2

    assert (await client.post("/_sim/reset")).status == 200
    stats = await (await client.get("/_sim/stats")).json()
    assert stats == {
        "GET /_sim/stats": 1,
        "callbacks_sent": 0,
        "callbacks_failed": 0,
        "callbacks_abandoned": 0,
        "callbacks_garbage": 0,
    }
    assert (await status(client, "market", task_id))["code"] == 422  # tasks are gone too


async def test_rates_are_per_one_second_window(simulator: SimulatorFactory) -> None:
    client = await simulator()
    for _ in range(3):
        await client.get(CREDITS_PATH, headers=AUTH)
    await asyncio.sleep(1.05)
    await client.get(CREDITS_PATH, headers=AUTH)
    assert (await (await client.get("/_sim/rates")).json())["GET /api/v1/chat/credit"] == 3
