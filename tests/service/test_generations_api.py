"""The public generations API over real HTTP: auth, create, read, list, models, events and cancel.

Every test runs the whole service in-process against a real KIE simulator server and a fresh,
migrated PostgreSQL database; nothing of ours is mocked. The simulator's latency decides how long a
generation stays open: ~0.5-1 s for ones that must finish, an hour for ones that must stay open.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from app.kie.catalog import Model
from app.kie.catalog_loader import default_catalog
from app.kie.endpoints import ENDPOINTS
from app.kie.simulator import make_app
from tests.support.stack import API_KEY, ServerFactory, Stack, start_stack, valid_input

KEY_ONE = "key-one-1234567"
KEY_TWO = "key-two-1234567"

CONTRACT_FIELDS = (
    "id",
    "state",
    "model",
    "task_id",
    "result_urls",
    "files",
    "error",
    "created_at",
    "updated_at",
    "finished_at",
)
OPEN_STATES = ("queued", "submitted", "running")

# Two market models that finish quickly in the simulator; EDIT has a required url_list as well.
TEXT_TO_IMAGE = "seedream/4.5-text-to-image"
EDIT = "seedream/4.5-edit"
OTHER = "google/imagen4"

FAST_LATENCY = 0.5
NEVER = 3600.0  # simulator latency that keeps a generation open for the whole test
# Well-formed ids no generation has (fixed, so test ids stay stable across runs).
UNKNOWN_ID = "3f1c2a9e-7b4d-4c1e-9a55-0d6b8e2f4a17"


def catalog_model(model_id: str) -> Model:
    return default_catalog().get(model_id)


# --- plumbing ----------------------------------------------------------------------------------


@dataclass
class Reply:
    """What one HTTP request got back."""

    status: int
    content_type: str
    body: Any
    headers: dict[str, str]


async def call(stack: Stack, method: str, path: str, *, key: str | None = API_KEY, **kwargs: Any) -> Reply:
    """One request to the service; ``key=None`` sends no X-API-Key header at all."""
    headers = dict(kwargs.pop("headers", {}))
    if key is not None:
        headers["X-API-Key"] = key
    async with stack.session.request(method, stack.base_url + path, headers=headers, **kwargs) as resp:
        raw = await resp.read()
        is_json = resp.content_type == "application/json"
        body: Any = orjson.loads(raw) if is_json else raw.decode(errors="replace")
        return Reply(resp.status, resp.content_type, body, dict(resp.headers))


def json_error_problem(reply: Reply, status: int, field: str | None = None) -> str | None:
    """Why ``reply`` is not a JSON error ``{"error", "message", ...}`` with this status and field."""
    if reply.status != status:
        return f"status {reply.status}, expected {status}: {reply.body!r}"
    if reply.content_type != "application/json":
        return f"content type {reply.content_type}, expected application/json: {reply.body!r}"
    body = reply.body
    if not isinstance(body, dict):
        return f"body is not a JSON object: {body!r}"
    for key in ("error", "message"):
        if not isinstance(body.get(key), str) or not body[key]:
            return f"no {key!r} string in {body!r}"
    if field is not None and body.get("field") != field:
        return f"field {body.get('field')!r}, expected {field!r}: {body!r}"
    return None


def assert_json_error(reply: Reply, status: int, field: str | None = None) -> None:
    problem = json_error_problem(reply, status, field)
    assert problem is None, problem


def create_body(model_id: str, input: Any = None) -> dict[str, Any]:
    return {"model": model_id, "input": valid_input(catalog_model(model_id)) if input is None else input}


async def create(
    stack: Stack,
    model_id: str = TEXT_TO_IMAGE,
    input: dict[str, Any] | None = None,
    *,
    key: str = API_KEY,
    headers: dict[str, str] | None = None,
) -> Reply:
    body = create_body(model_id, input)
    return await call(stack, "POST", "/api/v1/generations", key=key, json=body, headers=headers or {})


async def create_ok(stack: Stack, model_id: str = TEXT_TO_IMAGE, *, key: str = API_KEY) -> dict[str, Any]:
    reply = await create(stack, model_id, key=key)
    assert reply.status == 202, reply.body
    return reply.body


async def build_stack(
    aiohttp_server: ServerFactory,
    session: aiohttp.ClientSession,
    database_url: str,
    tmp_path: Path,
    *,
    latency: float = FAST_LATENCY,
    fail_rate: float = 0.0,
    **env: str,
) -> Stack:
    sim = await aiohttp_server(make_app(latency=latency, fail_rate=fail_rate, seed=7))
    kie_url = str(sim.make_url("")).rstrip("/")
    return await start_stack(aiohttp_server, session, database_url, str(tmp_path / "data"), kie_url, **env)


@pytest.fixture
async def stack(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> Stack:
    """Generations finish about half a second after they are created."""
    return await build_stack(aiohttp_server, session, database_url, tmp_path)


@pytest.fixture
async def open_stack(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> Stack:
    """Generations stay open (submitted or running) for the whole test."""
    return await build_stack(aiohttp_server, session, database_url, tmp_path, latency=NEVER)


@pytest.fixture
async def two_key_stack(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> Stack:
    """Two API keys (KEY_ONE, KEY_TWO); generations stay open."""
    return await build_stack(
        aiohttp_server, session, database_url, tmp_path, latency=NEVER, API_KEYS=f"{KEY_ONE},{KEY_TWO}"
    )


@dataclass
class SseEvent:
    name: str
    payload: Any


async def read_events(
    stack: Stack, generation_id: str, *, key: str = API_KEY, timeout: float = 10.0
) -> list[SseEvent]:
    """Read the event stream until the server closes it; fail if it is still open after ``timeout``."""
    events: list[SseEvent] = []
    name: str | None = None
    data: list[str] = []
    url = f"{stack.base_url}/api/v1/generations/{generation_id}/events"
    try:
        async with asyncio.timeout(timeout):
            async with stack.session.get(url, headers={"X-API-Key": key}) as resp:
                assert resp.status == 200, await resp.text()
                assert resp.content_type == "text/event-stream", resp.content_type
                async for raw in resp.content:  # one line at a time, until EOF
                    line = raw.decode().rstrip("\r\n")
                    if line == "":
                        if data:
                            events.append(SseEvent(name or "message", orjson.loads("\n".join(data))))
                        name, data = None, []
                    elif line.startswith(":"):
                        continue  # a comment: keep-alive
                    elif line.startswith("event:"):
                        name = line[len("event:") :].strip()
                    elif line.startswith("data:"):
                        data.append(line[len("data:") :].lstrip())
                assert not data, f"the stream ended inside an event: {data}"
    except TimeoutError:
        raise AssertionError(
            f"the event stream was still open after {timeout} s; events so far: "
            f"{[(e.name, e.payload.get('type')) for e in events]}"
        ) from None
    return events


def assert_envelope(event: SseEvent) -> None:
    """``{"type": progress|completed|error, "data": {...}}`` with the SSE event name equal to the type."""
    assert isinstance(event.payload, dict) and set(event.payload) == {"type", "data"}, event.payload
    assert event.payload["type"] in ("progress", "completed", "error"), event.payload
    assert event.name == event.payload["type"], (event.name, event.payload["type"])
    assert isinstance(event.payload["data"], dict), event.payload


def parse_time(value: Any) -> datetime:
    assert isinstance(value, str), value
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"timestamps carry their zone: {value}"
    return parsed


def forged_cursor(text: str) -> str:
    """A cursor in the API's own encoding (unpadded URL-safe base64) around text we chose."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def row_count(stack: Stack, sql: str, *args: Any) -> int:
    return int(await stack.pool.fetchval(sql, *args))


# --- auth --------------------------------------------------------------------------------------


async def test_health_needs_no_api_key(stack: Stack) -> None:
    reply = await call(stack, "GET", "/health", key=None)
    assert reply.status == 200 and reply.content_type == "application/json"
    assert reply.body["status"] and reply.body["role"]


PROTECTED_ROUTES = [
    ("GET", "/api/v1/models"),
    ("GET", "/api/v1/generations"),
    ("POST", "/api/v1/generations"),
    ("GET", f"/api/v1/generations/{UNKNOWN_ID}"),
    ("GET", f"/api/v1/generations/{UNKNOWN_ID}/events"),
    ("POST", f"/api/v1/generations/{UNKNOWN_ID}/cancel"),
    ("GET", "/api/v1/no-such-route"),
]


async def test_every_api_route_without_a_key_is_401_json(stack: Stack) -> None:
    problems = []
    for method, path in PROTECTED_ROUTES:
        reply = await call(stack, method, path, key=None, json={"model": TEXT_TO_IMAGE, "input": {}})
        if problem := json_error_problem(reply, 401):
            problems.append((method, path, problem))
    assert not problems, problems
    assert await row_count(stack, "SELECT count(*) FROM generations") == 0


async def test_a_wrong_key_is_401_json(stack: Stack) -> None:
    wrong_keys = {
        "empty": "",
        "other": "not-the-key",
        "prefix of the key": API_KEY[:-1],
        "the key and more": API_KEY + "x",
        "upper case": API_KEY.upper(),
        "padded": f" {API_KEY}x",
    }
    problems = []
    for label, wrong_key in wrong_keys.items():
        for method, path in PROTECTED_ROUTES:
            reply = await call(stack, method, path, key=wrong_key, json=create_body(TEXT_TO_IMAGE))
            if problem := json_error_problem(reply, 401):
                problems.append((label, method, path, problem))
    assert not problems, problems
    assert await row_count(stack, "SELECT count(*) FROM generations") == 0


async def test_a_key_of_raw_non_utf8_bytes_is_401_json(stack: Stack) -> None:
    """A header value that is not UTF-8 is just a wrong key: 401, never a 500."""
    host, port = stack.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"GET /api/v1/generations HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"X-API-Key: \xff\xfe\xc3(\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    assert status_line.split()[1] == "401", raw
    assert headers.get("content-type", "").startswith("application/json"), raw
    assert set(orjson.loads(body)) >= {"error", "message"}


async def test_the_header_name_is_case_insensitive(stack: Stack) -> None:
    reply = await call(stack, "GET", "/api/v1/generations", key=None, headers={"x-api-key": API_KEY})
    assert reply.status == 200, reply.body


async def test_one_key_cannot_see_or_touch_another_keys_generation(two_key_stack: Stack) -> None:
    stack = two_key_stack
    mine = await create_ok(stack, key=KEY_ONE)
    gid = mine["id"]

    # The default test key is not configured here: both configured keys work, nothing else does.
    assert_json_error(await call(stack, "GET", "/api/v1/generations"), 401)

    assert (await call(stack, "GET", f"/api/v1/generations/{gid}", key=KEY_ONE)).status == 200
    assert_json_error(await call(stack, "GET", f"/api/v1/generations/{gid}", key=KEY_TWO), 404)
    assert_json_error(await call(stack, "GET", f"/api/v1/generations/{gid}?wait=1", key=KEY_TWO), 404)
    assert_json_error(await call(stack, "GET", f"/api/v1/generations/{gid}/events", key=KEY_TWO), 404)
    assert_json_error(await call(stack, "POST", f"/api/v1/generations/{gid}/cancel", key=KEY_TWO), 404)

    listed = await call(stack, "GET", "/api/v1/generations", key=KEY_TWO)
    assert listed.status == 200 and listed.body["generations"] == [], listed.body
    listed = await call(stack, "GET", "/api/v1/generations", key=KEY_ONE)
    assert [g["id"] for g in listed.body["generations"]] == [gid]

    # The other key's cancel attempt changed nothing.
    after = await call(stack, "GET", f"/api/v1/generations/{gid}", key=KEY_ONE)
    assert after.body["state"] in OPEN_STATES, after.body
    assert after.body["finished_at"] is None


async def test_idempotency_keys_are_per_api_key(two_key_stack: Stack) -> None:
    stack = two_key_stack
    headers = {"Idempotency-Key": "shared-key-1"}
    first = await create(stack, key=KEY_ONE, headers=headers)
    other = await create(stack, key=KEY_TWO, headers=headers)
    assert first.status == 202 and other.status == 202, (first.body, other.body)
    assert first.body["id"] != other.body["id"]
    assert (
        await row_count(stack, "SELECT count(*) FROM generations WHERE idempotency_key = 'shared-key-1'") == 2
    )


# --- create ------------------------------------------------------------------------------------


async def test_create_returns_202_queued_with_id_model_and_created_at(open_stack: Stack) -> None:
    stack = open_stack
    before = time.time()
    reply = await create(stack)
    assert reply.status == 202, reply.body
    assert reply.content_type == "application/json"
    body = reply.body
    assert uuid.UUID(body["id"])
    assert body["state"] == "queued"
    assert body["model"] == TEXT_TO_IMAGE
    created_at = parse_time(body["created_at"])
    assert before - 5 <= created_at.timestamp() <= time.time() + 5
    row = await stack.pool.fetchrow("SELECT * FROM generations WHERE id = $1", uuid.UUID(body["id"]))
    assert row is not None and row["model"] == TEXT_TO_IMAGE and row["source"] == "api"


async def test_unknown_model_is_422_naming_model(stack: Stack) -> None:
    reply = await create(stack, "no-such/model", {"prompt": "a cat"})
    assert_json_error(reply, 422, "model")
    assert "no-such/model" in reply.body["message"]
    for body in ({"input": {"prompt": "a cat"}}, {"model": "", "input": {}}, {"model": 5, "input": {}}):
        reply = await call(stack, "POST", "/api/v1/generations", json=body)
        assert_json_error(reply, 422, "model")
    assert await row_count(stack, "SELECT count(*) FROM generations") == 0


async def test_missing_required_field_is_422_naming_it_with_a_readable_message(stack: Stack) -> None:
    model = catalog_model(EDIT)
    complete = valid_input(model)
    for name in model.required:
        partial = {k: v for k, v in complete.items() if k != name}
        reply = await create(stack, EDIT, partial)
        assert_json_error(reply, 422, f"input.{name}")
        assert "required" in reply.body["message"].lower(), reply.body
    # No input at all names the first required field.
    reply = await call(stack, "POST", "/api/v1/generations", json={"model": EDIT})
    assert_json_error(reply, 422, f"input.{model.required[0]}")
    assert await row_count(stack, "SELECT count(*) FROM generations") == 0


async def test_invalid_input_is_422_naming_the_field(stack: Stack) -> None:
    good = valid_input(catalog_model(EDIT))
    cases: list[tuple[str, dict[str, Any] | Any, str]] = [
        ("prompt is a number", {**good, "prompt": 12345}, "input.prompt"),
        ("prompt is a list", {**good, "prompt": ["a", "b"]}, "input.prompt"),
        ("prompt too long", {**good, "prompt": "x" * 3001}, "input.prompt"),
        ("bad enum", {**good, "aspect_ratio": "7:5"}, "input.aspect_ratio"),
        ("enum of the wrong type", {**good, "quality": 1}, "input.quality"),
        ("unknown field", {**good, "colour": "blue"}, "input.colour"),
        ("url list is a string", {**good, "image_urls": "https://x.example/a.png"}, "input.image_urls"),
        ("empty url list", {**good, "image_urls": []}, "input.image_urls"),
        ("not a url", {**good, "image_urls": ["ftp://x.example/a.png"]}, "input.image_urls[0]"),
        ("second url bad", {**good, "image_urls": [good["image_urls"][0], "nope"]}, "input.image_urls[1]"),
        ("input is a string", "a cat", "input"),
        ("input is a list", [good], "input"),
    ]
    problems = []
    for label, value, field in cases:
        reply = await call(stack, "POST", "/api/v1/generations", json={"model": EDIT, "input": value})
        ok = (
            reply.status == 422
            and reply.content_type == "application/json"
            and isinstance(reply.body, dict)
            and reply.body.get("field") == field
            and bool(reply.body.get("message"))
            and bool(reply.body.get("error"))
        )
        if not ok:
            problems.append((label, field, reply.status, reply.body))
    assert not problems, problems
    assert await row_count(stack, "SELECT count(*) FROM generations") == 0


async def test_a_body_that_is_not_a_json_object_is_422(stack: Stack) -> None:
    bodies = [b"", b"not json", b"{", b"[]", b'["model"]', b'"text"', b"42", b"null", b"true", b"\xff\xfe"]
    problems = []
    for raw in bodies:
        reply = await call(
            stack, "POST", "/api/v1/generations", data=raw, headers={"Content-Type": "application/json"}
        )
        if problem := json_error_problem(reply, 422):
            problems.append((raw, problem))
    assert not problems, problems
    assert await row_count(stack, "SELECT count(*) FROM generations") == 0


async def test_same_idempotency_key_and_request_returns_the_same_generation(stack: Stack) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = await create(stack, headers=headers)
    assert first.status == 202, first.body
    second = await create(stack, headers=headers)
    assert second.status == 200, second.body
    assert second.body["id"] == first.body["id"]
    assert second.body["model"] == TEXT_TO_IMAGE
    assert await row_count(stack, "SELECT count(*) FROM generations WHERE idempotency_key = 'order-42'") == 1
    assert await row_count(stack, "SELECT count(*) FROM generations") == 1


async def test_concurrent_requests_with_one_idempotency_key_make_one_generation(open_stack: Stack) -> None:
    stack = open_stack
    replies = await asyncio.gather(*(create(stack, headers={"Idempotency-Key": "burst"}) for _ in range(8)))
    assert sorted(r.status for r in replies) == [200] * 7 + [202], [(r.status, r.body) for r in replies]
    assert len({r.body["id"] for r in replies}) == 1
    assert await row_count(stack, "SELECT count(*) FROM generations") == 1


async def test_same_idempotency_key_with_a_different_request_is_409(stack: Stack) -> None:
    headers = {"Idempotency-Key": "order-43"}
    first = await create(stack, input={"prompt": "a red fox"}, headers=headers)
    assert first.status == 202, first.body
    assert_json_error(await create(stack, input={"prompt": "a blue fox"}, headers=headers), 409)
    assert_json_error(await create(stack, OTHER, {"prompt": "a red fox"}, headers=headers), 409)
    assert await row_count(stack, "SELECT count(*) FROM generations") == 1
    # Without the key the same request is simply a new generation.
    again = await create(stack, input={"prompt": "a red fox"})
    assert again.status == 202 and again.body["id"] != first.body["id"]


async def test_an_overlong_idempotency_key_is_422_naming_it(stack: Stack) -> None:
    reply = await create(stack, headers={"Idempotency-Key": "k" * 201})
    assert_json_error(reply, 422, "Idempotency-Key")
    assert await row_count(stack, "SELECT count(*) FROM generations") == 0
    assert (await create(stack, headers={"Idempotency-Key": "k" * 200})).status == 202


# --- read --------------------------------------------------------------------------------------


async def test_get_has_every_contract_field_while_open(open_stack: Stack) -> None:
    stack = open_stack
    created = await create_ok(stack)
    reply = await call(stack, "GET", f"/api/v1/generations/{created['id']}")
    assert reply.status == 200 and reply.content_type == "application/json"
    body = reply.body
    missing = [name for name in CONTRACT_FIELDS if name not in body]
    assert not missing, f"missing contract fields {missing} in {body}"
    assert body["id"] == created["id"] and body["model"] == TEXT_TO_IMAGE
    assert body["state"] in OPEN_STATES
    assert body["result_urls"] == [] and body["files"] == []
    assert body["finished_at"] is None
    assert parse_time(body["updated_at"]) >= parse_time(body["created_at"])


async def test_wait_returns_as_soon_as_a_running_generation_succeeds(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    stack = await build_stack(aiohttp_server, session, database_url, tmp_path, latency=1.0)
    created = await create_ok(stack)
    await stack.wait_state(created["id"], {"submitted", "running"}, timeout=5)
    started = time.monotonic()
    reply = await call(stack, "GET", f"/api/v1/generations/{created['id']}?wait=5")
    elapsed = time.monotonic() - started
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["state"] == "succeeded", body
    assert elapsed < 4.5, f"?wait=5 took {elapsed:.2f} s: it should return when the generation ends (~1 s)"
    missing = [name for name in CONTRACT_FIELDS if name not in body]
    assert not missing, f"missing contract fields {missing} in {body}"
    assert isinstance(body["task_id"], str) and body["task_id"]
    assert body["result_urls"] and all(
        isinstance(u, str) and u.startswith("http") for u in body["result_urls"]
    )
    assert isinstance(body["files"], list)
    assert body["error"] is None
    assert parse_time(body["finished_at"]) >= parse_time(body["created_at"])
    assert parse_time(body["updated_at"]) >= parse_time(body["created_at"])


async def test_wait_is_bounded_for_a_generation_that_does_not_end(open_stack: Stack) -> None:
    stack = open_stack
    created = await create_ok(stack)
    started = time.monotonic()
    reply = await call(stack, "GET", f"/api/v1/generations/{created['id']}?wait=1")
    elapsed = time.monotonic() - started
    assert reply.status == 200 and reply.body["state"] in OPEN_STATES, reply.body
    assert 0.8 <= elapsed < 4.0, f"?wait=1 returned after {elapsed:.2f} s"


async def test_unknown_or_malformed_id_is_404_json(stack: Stack) -> None:
    ids = {
        "unknown": UNKNOWN_ID,
        "malformed": "not-a-uuid",
        "number": "12345",
        "injection": "%27%3B%20DROP%20TABLE%20generations%3B--",
        "uuid and more": f"{UNKNOWN_ID}x",
    }
    problems = []
    for label, gid in ids.items():
        base = f"/api/v1/generations/{gid}"
        for method, path in [
            ("GET", base),
            ("GET", base + "?wait=2"),
            ("GET", base + "/events"),
            ("POST", base + "/cancel"),
        ]:
            started = time.monotonic()
            reply = await call(stack, method, path)
            if problem := json_error_problem(reply, 404):
                problems.append((label, method, path, problem))
            elif time.monotonic() - started > 1.9:
                problems.append((label, method, path, "an unknown id made the request wait"))
    assert not problems, problems


# --- list --------------------------------------------------------------------------------------


async def test_list_is_newest_first_and_filters_by_state_and_model(open_stack: Stack) -> None:
    stack = open_stack
    ids = []
    for model_id in (TEXT_TO_IMAGE, OTHER, TEXT_TO_IMAGE, OTHER, TEXT_TO_IMAGE):
        ids.append((await create_ok(stack, model_id))["id"])
    newest_first = list(reversed(ids))

    reply = await call(stack, "GET", "/api/v1/generations")
    assert reply.status == 200, reply.body
    assert [g["id"] for g in reply.body["generations"]] == newest_first
    assert reply.body["next_cursor"] is None
    for item in reply.body["generations"]:
        assert all(name in item for name in CONTRACT_FIELDS), item

    reply = await call(stack, "GET", "/api/v1/generations", params={"model": OTHER})
    assert [g["id"] for g in reply.body["generations"]] == [ids[3], ids[1]]
    assert {g["model"] for g in reply.body["generations"]} == {OTHER}
    reply = await call(stack, "GET", "/api/v1/generations", params={"model": "no-such/model"})
    assert reply.status == 200 and reply.body["generations"] == []

    for gid in (ids[0], ids[3]):
        canceled = await call(stack, "POST", f"/api/v1/generations/{gid}/cancel")
        assert canceled.status == 200 and canceled.body["state"] == "canceled", canceled.body
    reply = await call(stack, "GET", "/api/v1/generations", params={"state": "canceled"})
    assert [g["id"] for g in reply.body["generations"]] == [ids[3], ids[0]]
    reply = await call(stack, "GET", "/api/v1/generations", params={"state": "canceled", "model": OTHER})
    assert [g["id"] for g in reply.body["generations"]] == [ids[3]]
    reply = await call(stack, "GET", "/api/v1/generations", params={"state": "succeeded"})
    assert reply.body["generations"] == []


async def test_cursor_pages_through_everything_once(open_stack: Stack) -> None:
    stack = open_stack
    ids = [(await create_ok(stack))["id"] for _ in range(7)]
    newest_first = list(reversed(ids))
    for limit in (1, 2, 3, 7, 10):
        seen: list[str] = []
        cursor: str | None = None
        for _page in range(20):
            params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
            reply = await call(stack, "GET", "/api/v1/generations", params=params)
            assert reply.status == 200, reply.body
            page = [g["id"] for g in reply.body["generations"]]
            assert len(page) <= limit
            seen.extend(page)
            cursor = reply.body["next_cursor"]
            if cursor is None:
                break
            assert isinstance(cursor, str) and cursor
        else:
            raise AssertionError(f"limit={limit}: paging never ended")
        assert seen == newest_first, f"limit={limit}: {seen}"


async def test_cursor_paging_respects_filters(open_stack: Stack) -> None:
    stack = open_stack
    ids = [(await create_ok(stack, model_id))["id"] for model_id in [TEXT_TO_IMAGE, OTHER] * 3]
    wanted = [gid for gid, model_id in zip(ids, [TEXT_TO_IMAGE, OTHER] * 3, strict=True) if model_id == OTHER]
    seen: list[str] = []
    cursor: str | None = None
    for _page in range(10):
        params = {"limit": "1", "model": OTHER, **({"cursor": cursor} if cursor else {})}
        reply = await call(stack, "GET", "/api/v1/generations", params=params)
        assert reply.status == 200, reply.body
        seen.extend(g["id"] for g in reply.body["generations"])
        cursor = reply.body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(wanted))


async def test_cursor_paging_is_stable_while_new_generations_arrive(open_stack: Stack) -> None:
    stack = open_stack
    ids = [(await create_ok(stack))["id"] for _ in range(4)]
    first = await call(stack, "GET", "/api/v1/generations", params={"limit": "2"})
    seen = [g["id"] for g in first.body["generations"]]
    cursor = first.body["next_cursor"]
    assert cursor
    newer = [(await create_ok(stack))["id"] for _ in range(2)]
    while cursor:
        reply = await call(stack, "GET", "/api/v1/generations", params={"limit": "2", "cursor": cursor})
        assert reply.status == 200, reply.body
        seen.extend(g["id"] for g in reply.body["generations"])
        cursor = reply.body["next_cursor"]
    assert seen == list(reversed(ids)), "later pages hold only what was older than the first page"
    everything = await call(stack, "GET", "/api/v1/generations", params={"limit": "100"})
    assert [g["id"] for g in everything.body["generations"]] == list(reversed(ids + newer))


async def test_cursor_paging_handles_equal_created_at(open_stack: Stack) -> None:
    """Rows created in the same microsecond are still paged once each (ordered by id after time)."""
    stack = open_stack
    ids = [(await create_ok(stack))["id"] for _ in range(5)]
    await stack.pool.execute("UPDATE generations SET created_at = '2026-01-02T03:04:05.123456+00'")
    expected = sorted(ids, key=uuid.UUID, reverse=True)
    seen: list[str] = []
    cursor: str | None = None
    for _page in range(10):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        reply = await call(stack, "GET", "/api/v1/generations", params=params)
        assert reply.status == 200, reply.body
        seen.extend(g["id"] for g in reply.body["generations"])
        cursor = reply.body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


async def test_bad_list_parameters_are_422_naming_the_field(stack: Stack) -> None:
    cases: list[tuple[dict[str, str], str]] = [
        ({"state": "bogus"}, "state"),
        ({"state": "QUEUED"}, "state"),
        ({"limit": "0"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "2.5"}, "limit"),
        ({"cursor": "!!!"}, "cursor"),
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "é"}, "cursor"),
        ({"cursor": forged_cursor("yesterday|not-a-uuid")}, "cursor"),
        ({"cursor": forged_cursor(f"not-a-date|{UNKNOWN_ID}")}, "cursor"),
        ({"cursor": forged_cursor("2026-01-01T00:00:00+00:00")}, "cursor"),
    ]
    problems = []
    for params, field in cases:
        reply = await call(stack, "GET", "/api/v1/generations", params=params)
        if problem := json_error_problem(reply, 422, field):
            problems.append((params, problem))
    assert not problems, problems


async def test_a_forged_cursor_with_an_out_of_range_time_is_422_not_500(stack: Stack) -> None:
    """Well-formed cursors whose time PostgreSQL cannot hold once turned into UTC."""
    problems = []
    for text in (f"0001-01-01T00:00:00+14:00|{UNKNOWN_ID}", f"9999-12-31T23:59:59-14:00|{UNKNOWN_ID}"):
        reply = await call(stack, "GET", "/api/v1/generations", params={"cursor": forged_cursor(text)})
        if problem := json_error_problem(reply, 422, "cursor"):
            problems.append((text, problem))
    assert not problems, problems


# --- models ------------------------------------------------------------------------------------


async def test_models_lists_the_catalog_with_every_family(stack: Stack) -> None:
    reply = await call(stack, "GET", "/api/v1/models")
    assert reply.status == 200 and reply.content_type == "application/json"
    models = reply.body["models"]
    assert isinstance(models, list) and models
    for item in models:
        assert {"id", "family", "output", "required", "optional"} <= set(item), item
        assert isinstance(item["id"], str) and item["id"]
        assert isinstance(item["required"], list) and all(isinstance(n, str) for n in item["required"])
        assert isinstance(item["optional"], dict)
        assert not set(item["required"]) & set(item["optional"]), item
    assert {m["family"] for m in models} >= set(ENDPOINTS), sorted(
        set(ENDPOINTS) - {m["family"] for m in models}
    )
    assert [m["id"] for m in models] == [m.id for m in default_catalog().models()]
    listed = {m["id"]: m for m in models}
    assert listed[EDIT]["required"] == catalog_model(EDIT).required


# --- events ------------------------------------------------------------------------------------


async def test_events_of_a_success_end_with_one_completed_event_then_close(stack: Stack) -> None:
    created = await create_ok(stack)
    events = await read_events(stack, created["id"])
    assert events, "the stream sent nothing"
    for event in events:
        assert_envelope(event)
        assert event.payload["data"]["id"] == created["id"]
    types = [e.payload["type"] for e in events]
    assert types[0] == "progress", types  # the stream opens with the generation as it is now
    assert types.count("completed") == 1, types
    assert "error" not in types, types
    end = types.index("completed")
    assert all(e.payload["data"]["state"] in OPEN_STATES for e in events[:end]), types
    done = events[end].payload["data"]
    assert done["state"] == "succeeded"
    assert done["result_urls"] and all(isinstance(u, str) for u in done["result_urls"])
    # After the success, at most one more event: the progress that brings our copies of the files.
    after = events[end + 1 :]
    assert len(after) <= 1, types
    final = (after or events[end : end + 1])[0].payload["data"]
    assert final["mirror"]["state"] == "done" and len(final["files"]) == len(done["result_urls"])

    # Opened after the end, the stream says it once (with the files) and closes.
    again = await read_events(stack, created["id"], timeout=5)
    assert [e.payload["type"] for e in again] == ["completed"]
    assert again[0].payload["data"]["result_urls"] == done["result_urls"]

    def copies(data: dict) -> list:  # type: ignore[type-arg]
        return [(f["name"], f["sha256"], f["bytes"]) for f in data["files"]]

    assert copies(again[0].payload["data"]) == copies(final)


async def test_events_of_a_failure_end_with_one_error_event_then_close(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    stack = await build_stack(aiohttp_server, session, database_url, tmp_path, fail_rate=1.0)
    created = await create_ok(stack)
    events = await read_events(stack, created["id"])
    for event in events:
        assert_envelope(event)
    types = [e.payload["type"] for e in events]
    assert types.count("error") == 1 and types[-1] == "error", types
    assert "completed" not in types, types
    data = events[-1].payload["data"]
    assert isinstance(data.get("error"), str) and data["error"], data
    assert isinstance(data.get("message"), str) and data["message"], data
    assert data["id"] == created["id"] and data["state"] == "failed"
    reply = await call(stack, "GET", f"/api/v1/generations/{created['id']}")
    assert reply.body["state"] == "failed" and reply.body["error"], reply.body


async def test_events_of_a_timed_out_generation_end_with_one_error_event(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    stack = await build_stack(
        aiohttp_server, session, database_url, tmp_path, latency=NEVER, GENERATION_TIMEOUT_S="1"
    )
    created = await create_ok(stack)
    events = await read_events(stack, created["id"], timeout=15)
    for event in events:
        assert_envelope(event)
    types = [e.payload["type"] for e in events]
    assert types.count("error") == 1 and types[-1] == "error" and "completed" not in types, types
    data = events[-1].payload["data"]
    assert data["state"] == "timed_out", data
    assert isinstance(data.get("error"), str) and data["error"], data
    assert isinstance(data.get("message"), str) and data["message"], data


async def test_events_of_a_canceled_generation_end_with_an_error_event(open_stack: Stack) -> None:
    stack = open_stack
    created = await create_ok(stack)
    assert (await call(stack, "POST", f"/api/v1/generations/{created['id']}/cancel")).status == 200
    events = await read_events(stack, created["id"], timeout=5)
    assert [e.payload["type"] for e in events] == ["error"]
    assert_envelope(events[0])
    data = events[0].payload["data"]
    assert data["state"] == "canceled" and data["error"] and data["message"], data


async def test_events_stream_sees_a_cancel_and_closes(open_stack: Stack) -> None:
    stack = open_stack
    created = await create_ok(stack)
    reader = asyncio.create_task(read_events(stack, created["id"], timeout=10))
    await asyncio.sleep(0.5)
    assert not reader.done(), "the stream of an open generation stays open"
    assert (await call(stack, "POST", f"/api/v1/generations/{created['id']}/cancel")).status == 200
    events = await reader
    types = [e.payload["type"] for e in events]
    assert types[-1] == "error" and types.count("error") == 1 and "completed" not in types, types
    assert all(t == "progress" for t in types[:-1]), types


# --- cancel ------------------------------------------------------------------------------------


async def test_cancel_an_open_generation_and_it_stays_canceled(open_stack: Stack) -> None:
    stack = open_stack
    created = await create_ok(stack)
    await stack.wait_state(created["id"], {"submitted", "running"}, timeout=5)
    reply = await call(stack, "POST", f"/api/v1/generations/{created['id']}/cancel")
    assert reply.status == 200 and reply.content_type == "application/json", reply.body
    canceled = reply.body
    assert canceled["id"] == created["id"]
    assert canceled["state"] == "canceled"
    assert canceled["finished_at"] is not None
    assert all(name in canceled for name in CONTRACT_FIELDS), canceled

    await asyncio.sleep(1.0)
    later = await call(stack, "GET", f"/api/v1/generations/{created['id']}")
    assert later.body["state"] == "canceled", later.body
    assert later.body["finished_at"] == canceled["finished_at"]
    # Canceling again changes nothing.
    again = await call(stack, "POST", f"/api/v1/generations/{created['id']}/cancel")
    assert again.status == 200 and again.body["state"] == "canceled"
    assert again.body["finished_at"] == canceled["finished_at"]


async def test_a_late_callback_does_not_undo_a_cancel(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> None:
    stack = await build_stack(aiohttp_server, session, database_url, tmp_path, latency=1.0)
    created = await create_ok(stack)
    row = await stack.wait_state(created["id"], {"submitted", "running"}, timeout=5)
    task_id = row["task_id"]
    reply = await call(stack, "POST", f"/api/v1/generations/{created['id']}/cancel")
    assert reply.status == 200 and reply.body["state"] == "canceled", reply.body

    # Wait for KIE's success callback for this task to arrive and be handled.
    deadline = time.monotonic() + 10
    while not await row_count(
        stack, "SELECT count(*) FROM callback_events WHERE task_id = $1 AND outcome IS NOT NULL", task_id
    ):
        assert time.monotonic() < deadline, "the simulator's callback never arrived"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)

    later = await call(stack, "GET", f"/api/v1/generations/{created['id']}")
    assert later.body["state"] == "canceled", later.body
    assert later.body["finished_at"] == reply.body["finished_at"]
    assert later.body["result_urls"] == []


async def test_cancel_of_a_finished_generation_returns_it_unchanged(stack: Stack) -> None:
    created = await create_ok(stack)
    done = await call(stack, "GET", f"/api/v1/generations/{created['id']}?wait=5")
    assert done.body["state"] == "succeeded", done.body
    reply = await call(stack, "POST", f"/api/v1/generations/{created['id']}/cancel")
    assert reply.status == 200, reply.body
    assert reply.body["state"] == "succeeded"
    assert reply.body["result_urls"] == done.body["result_urls"]
    assert reply.body["finished_at"] == done.body["finished_at"]


# --- errors are JSON ---------------------------------------------------------------------------


async def test_routing_errors_are_json(stack: Stack) -> None:
    cases = [
        ("GET", "/api/v1/no-such-route", 404),
        ("GET", "/api/v2/generations", 404),
        ("GET", "/no-such-page", 404),
        ("DELETE", "/api/v1/generations", 405),
        ("PUT", f"/api/v1/generations/{UNKNOWN_ID}", 405),
        ("GET", f"/api/v1/generations/{UNKNOWN_ID}/cancel", 405),
        ("POST", "/api/v1/models", 405),
    ]
    problems = []
    for method, path, status in cases:
        if problem := json_error_problem(await call(stack, method, path), status):
            problems.append((method, path, problem))
    assert not problems, problems


async def test_an_oversized_body_is_a_json_error(stack: Stack) -> None:
    body = orjson.dumps({"model": TEXT_TO_IMAGE, "input": {"prompt": "x" * (2 * 1024 * 1024)}})
    reply = await call(
        stack, "POST", "/api/v1/generations", data=body, headers={"Content-Type": "application/json"}
    )
    assert_json_error(reply, 413)
    assert await row_count(stack, "SELECT count(*) FROM generations") == 0


async def test_a_nul_character_in_any_text_is_a_422_naming_the_field(stack: Stack) -> None:
    # PostgreSQL rejects NUL in text and jsonb: refused up front, never a 500 and never stored.
    for query in ({"model": "a\x00b"}, {"state": "queued\x00"}, {"cursor": "\x00"}):
        status, body = await stack.api("GET", "/api/v1/generations", params=query)
        [name] = query
        assert status == 422 and body["error"] == "invalid_input" and body["field"] == name, body
    status, body = await stack.api("GET", "/api/v1/models", params={"x\x00": "1"})
    assert status == 422 and body["field"] == "x\\0", body
    model = catalog_model("google/nano-banana")
    cases = [
        ({"model": model.id, "input": {"prompt": "a cat\x00"}}, "input.prompt"),
        ({"model": "google/nano\x00banana", "input": {"prompt": "a cat"}}, "model"),
        (
            {"model": model.id, "input": {"prompt": "a cat", "image_urls": ["https://x/\x00.png"]}},
            "input.image_urls[0]",
        ),
        ({"model": model.id, "input": {"prompt\x00": "a cat"}}, "input.prompt\x00"),
    ]
    for payload, field in cases:
        status, body = await stack.api("POST", "/api/v1/generations", json=payload)
        assert status == 422 and body["field"] == field, (payload, body)
    assert await stack.pool.fetchval("SELECT count(*) FROM generations") == 0
