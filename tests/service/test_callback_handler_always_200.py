"""POST /callbacks/kie over real HTTP on a real database: always 200, and the right rows after."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from app.config import load_settings
from app.web.application import make_web_app
from app.web.keys import runtime_of
from tests.support.callbacks import (
    callback_query,
    make_generation,
    market_failure,
    market_success,
    wait_for_row,
    wait_until_ready,
)

ClientFactory = Callable[[web.Application], Awaitable[TestClient]]


@pytest.fixture
async def app(database_url: str, tmp_path) -> web.Application:  # type: ignore[no-untyped-def]
    return make_web_app(load_settings({"DATABASE_URL": database_url, "DATA_DIR": str(tmp_path / "data")}))


@pytest.fixture
async def client(app: web.Application, aiohttp_client: ClientFactory) -> TestClient:
    client = await aiohttp_client(app)
    await wait_until_ready(app)
    return client


def pool_of(app: web.Application):  # type: ignore[no-untyped-def]
    pool = runtime_of(app).database.pool
    assert pool is not None
    return pool


async def post(client: TestClient, body: bytes | str, *, path: str = "/callbacks/kie", **kwargs) -> dict:  # type: ignore[no-untyped-def]
    resp = await client.post(path, data=body, **kwargs)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"", {}),
        (b"\xff\xfe\x00garbage\x00", {"Content-Type": "application/octet-stream"}),
        (b"not json at all", {"Content-Type": "text/plain"}),
        (b"taskId=form-task&code=200", {"Content-Type": "application/x-www-form-urlencoded"}),
        (
            b'{"code": 200, "data": {"taskId": "unknown-task", "state": "success"}}',
            {"Content-Type": "text/html"},
        ),
        (b"[" * 50_000 + b"]" * 50_000, {"Content-Type": "application/json"}),
        (b'{"data": "\\u0000 nul inside"}', {"Content-Type": "application/json"}),
    ],
    ids=["empty", "binary", "text", "form", "wrong-content-type", "deep-nesting", "nul-char"],
)
async def test_anything_is_answered_200_and_stored(
    client: TestClient, app: web.Application, body: bytes, headers: dict[str, str]
) -> None:
    assert await post(client, body, headers=headers) == {"ok": True}
    pool = pool_of(app)
    assert await pool.fetchval("SELECT count(*) FROM callback_events") == 1
    row = await pool.fetchrow("SELECT body_size, content_type, strategy, verification FROM callback_events")
    assert row["body_size"] == len(body)
    if "Content-Type" in headers:
        assert row["content_type"] == headers["Content-Type"]
    assert row["verification"] == "none"


async def test_a_huge_body_is_accepted_and_stored_truncated(client: TestClient, app: web.Application) -> None:
    padding = "x" * (3 * 1024 * 1024)
    body = orjson.dumps({"data": {"taskId": "big-task", "state": "generating", "padding": padding}})
    await post(client, body, headers={"Content-Type": "application/json"})
    row = await pool_of(app).fetchrow("SELECT body, body_size, body_truncated, task_id FROM callback_events")
    assert row["body_size"] == len(body)
    assert row["body_truncated"] is True
    assert len(row["body"]) <= 64 * 1024
    assert row["task_id"] == "big-task"


async def test_any_path_below_the_endpoint_and_odd_queries_are_200(
    client: TestClient, app: web.Application
) -> None:
    await post(client, b"{}", path="/callbacks/kie/suno/extra?x=1&x=2&token=zzz&gid=")
    row = await pool_of(app).fetchrow("SELECT path, query, verification FROM callback_events")
    assert row["path"] == "/callbacks/kie/suno/extra"
    assert row["query"]["token"] == "***", "the URL token is a secret and is never stored"
    assert row["verification"] == "invalid"


async def test_unknown_task_is_kept_as_an_orphan(client: TestClient, app: web.Application) -> None:
    await post(
        client, orjson.dumps(market_success("never-seen")), headers={"Content-Type": "application/json"}
    )
    pool = pool_of(app)
    outcome = await wait_for_row(pool, "SELECT outcome FROM callback_events WHERE task_id = 'never-seen'")
    assert outcome == "orphan"
    assert await pool.fetchval("SELECT applied_at FROM callback_events") is None


async def test_verified_success_is_applied_once_even_when_duplicated(
    client: TestClient, app: web.Application
) -> None:
    generation_id = await make_generation(app, task_id="task-dup")
    query = callback_query(app, generation_id)
    body = orjson.dumps(market_success("task-dup"))
    await asyncio.gather(*(post(client, body, params=query) for _ in range(3)))
    pool = pool_of(app)
    await wait_for_row(
        pool,
        "SELECT count(*) FROM callback_events WHERE applied_at IS NOT NULL",
        predicate=lambda n: n == 3,
    )
    outcomes = sorted(r["outcome"] for r in await pool.fetch("SELECT outcome FROM callback_events"))
    assert outcomes == ["applied:succeeded", "ignored:succeeded", "ignored:succeeded"]
    row = await pool.fetchrow(
        "SELECT state, result_urls, finished_at FROM generations WHERE id = $1", generation_id
    )
    assert row["state"] == "succeeded"
    assert row["result_urls"] == ["https://files.example/out.mp4"]
    assert row["finished_at"] is not None
    verifications = {r["verification"] for r in await pool.fetch("SELECT verification FROM callback_events")}
    assert verifications == {"url_token"}


async def test_late_failure_after_success_never_moves_the_row_back(
    client: TestClient, app: web.Application
) -> None:
    generation_id = await make_generation(app, task_id="task-late")
    query = callback_query(app, generation_id)
    await post(client, orjson.dumps(market_success("task-late")), params=query)
    pool = pool_of(app)
    await wait_for_row(
        pool,
        "SELECT state FROM generations WHERE id = $1",
        generation_id,
        predicate=lambda s: s == "succeeded",
    )
    await post(client, orjson.dumps(market_failure("task-late")), params=query)
    await wait_for_row(
        pool, "SELECT count(*) FROM callback_events WHERE applied_at IS NOT NULL", predicate=lambda n: n == 2
    )
    assert await pool.fetchval("SELECT state FROM generations WHERE id = $1", generation_id) == "succeeded"


async def test_forged_token_never_finishes_a_generation(client: TestClient, app: web.Application) -> None:
    generation_id = await make_generation(app, task_id="task-forged")
    forged = {"gid": str(generation_id), "token": "0" * 40}
    await post(client, orjson.dumps(market_failure("task-forged")), params=forged)
    pool = pool_of(app)
    outcome = await wait_for_row(pool, "SELECT outcome FROM callback_events")
    assert outcome == "check_scheduled"
    row = await pool.fetchrow("SELECT state, next_check_at FROM generations WHERE id = $1", generation_id)
    assert row["state"] == "submitted", "a forged callback must not fail the generation"
    assert row["next_check_at"] is not None, "it makes the generation due for a status check instead"
    assert await pool.fetchval("SELECT verification FROM callback_events") == "invalid"


async def test_a_token_for_another_generation_is_invalid(client: TestClient, app: web.Application) -> None:
    mine = await make_generation(app, task_id="task-mine")
    other = await make_generation(app)
    await post(client, orjson.dumps(market_success("task-mine")), params=callback_query(app, other))
    pool = pool_of(app)
    assert await wait_for_row(pool, "SELECT outcome FROM callback_events") == "check_scheduled"
    assert await pool.fetchval("SELECT verification FROM callback_events") == "invalid"
    assert await pool.fetchval("SELECT state FROM generations WHERE id = $1", mine) == "submitted"


async def test_unverified_callback_schedules_a_check(client: TestClient, app: web.Application) -> None:
    generation_id = await make_generation(app, task_id="task-plain")
    await post(client, orjson.dumps(market_success("task-plain")))
    pool = pool_of(app)
    assert await wait_for_row(pool, "SELECT outcome FROM callback_events") == "check_scheduled"
    assert await pool.fetchval("SELECT verification FROM callback_events") == "none"
    row = await pool.fetchrow("SELECT state, next_check_at FROM generations WHERE id = $1", generation_id)
    assert row["state"] == "submitted" and row["next_check_at"] is not None


async def test_orphan_then_task_id_recorded_applies_it(client: TestClient, app: web.Application) -> None:
    """KIE can call back before our create request returned: the orphan waits and is applied then."""
    generation_id = await make_generation(app)  # queued, no task id yet
    await post(client, orjson.dumps(market_success("task-early")), params=callback_query(app, generation_id))
    pool = pool_of(app)
    assert await wait_for_row(pool, "SELECT outcome FROM callback_events") == "orphan"

    runtime = runtime_of(app)
    async with pool.acquire() as conn, conn.transaction():
        assert await runtime.callback_applier.attach_task_id(conn, generation_id, "task-early", None)
    row = await pool.fetchrow(
        "SELECT state, task_id, result_urls FROM generations WHERE id = $1", generation_id
    )
    assert row["state"] == "succeeded" and row["task_id"] == "task-early"
    event = await pool.fetchrow("SELECT outcome, generation_id, applied_at FROM callback_events")
    assert event["outcome"] == "applied:succeeded"
    assert event["generation_id"] == generation_id and event["applied_at"] is not None


async def test_a_callback_stored_while_its_task_id_is_being_recorded_is_not_left_an_orphan(
    client: TestClient, app: web.Application
) -> None:
    """Unknown-task callbacks are settled as orphans when stored; recording the task id must not race that.

    The callback arrives while attach_task_id's transaction has recorded the task id and scanned
    for orphans but not yet committed. Storing it waits for that commit (the task-id lock) and
    then sees the task id, so it is applied instead of waiting as an orphan nobody will look for.
    """
    generation_id = await make_generation(app)  # queued, no task id yet
    pool = pool_of(app)
    runtime = runtime_of(app)
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            assert await runtime.callback_applier.attach_task_id(conn, generation_id, "task-race", None)
            # Unverified on purpose: those are the ones settled as orphans at insert time.
            sending = asyncio.create_task(post(client, orjson.dumps(market_success("task-race"))))
            await asyncio.sleep(0.3)
            assert not sending.done(), "storing waits for the task id being recorded"
        finally:
            await transaction.commit()
    assert await sending == {"ok": True}
    outcome = await wait_for_row(pool, "SELECT outcome FROM callback_events WHERE task_id = 'task-race'")
    assert outcome == "check_scheduled", "applied against the generation, not left as an orphan"
    event = await pool.fetchrow("SELECT generation_id, applied_at FROM callback_events")
    assert event["generation_id"] == generation_id and event["applied_at"] is not None


async def test_callbacks_that_cannot_move_a_generation_are_settled_as_they_are_stored(
    client: TestClient, app: web.Application
) -> None:
    def applied(outcome: str) -> float:
        return REGISTRY.get_sample_value("kie_callback_apply_total", {"outcome": outcome}) or 0.0

    before = {outcome: applied(outcome) for outcome in ("orphan", "no_task_id")}
    await post(client, orjson.dumps(market_success("nobody-knows")))
    await post(client, b'{"code": 200, "msg": "no id anywhere"}')
    pool = pool_of(app)
    rows = {
        r["strategy"]: r
        for r in await pool.fetch("SELECT strategy, outcome, applied_at FROM callback_events")
    }
    # Settled by the INSERT itself, before the 200: no waiting for the applier.
    assert rows["documented"]["outcome"] == "orphan" and rows["documented"]["applied_at"] is None
    assert rows["none"]["outcome"] == "no_task_id" and rows["none"]["applied_at"] is not None
    assert {outcome: applied(outcome) - count for outcome, count in before.items()} == {
        "orphan": 1.0,
        "no_task_id": 1.0,
    }


async def test_suno_stages_end_as_one_success(client: TestClient, app: web.Application) -> None:
    generation_id = await make_generation(app, task_id="suno-1", model="suno/V4_5")
    query = callback_query(app, generation_id)
    track = {"id": "track-1", "audio_url": "", "stream_audio_url": "https://files.example/s.mp3"}
    for stage in ("text", "first"):
        body = {
            "code": 200,
            "msg": "ok",
            "data": {"callbackType": stage, "task_id": "suno-1", "data": [track]},
        }
        await post(client, orjson.dumps(body), params=query)
    done_track = {**track, "audio_url": "https://files.example/a.mp3"}
    body = {
        "code": 200,
        "msg": "ok",
        "data": {"callbackType": "complete", "task_id": "suno-1", "data": [done_track]},
    }
    await post(client, orjson.dumps(body), params=query)
    pool = pool_of(app)
    await wait_for_row(
        pool, "SELECT count(*) FROM callback_events WHERE applied_at IS NOT NULL", predicate=lambda n: n == 3
    )
    row = await pool.fetchrow(
        "SELECT state, stage, result_urls FROM generations WHERE id = $1", generation_id
    )
    assert row["state"] == "succeeded"
    assert row["stage"] == "complete"
    assert row["result_urls"] == ["https://files.example/a.mp3"]
    outcomes = [r["outcome"] for r in await pool.fetch("SELECT outcome FROM callback_events ORDER BY id")]
    assert outcomes.count("applied:succeeded") == 1


async def test_get_on_the_callback_endpoint_is_a_json_405(client: TestClient) -> None:
    resp = await client.get("/callbacks/kie")
    assert resp.status == 405 and resp.content_type == "application/json"


async def test_metrics_count_callbacks(client: TestClient) -> None:
    await post(client, b'{"data": {"taskId": "m-1"}}')
    text = await (await client.get("/metrics")).text()
    assert 'kie_callbacks_total{outcome="stored",verified="none"}' in text
    assert 'kie_callback_parse_strategy_total{strategy="documented"}' in text
    assert "kie_callback_ack_seconds_bucket" in text
    assert "kie_callback_orphans" in text


async def test_our_token_echoed_inside_a_body_is_not_stored(client: TestClient, app: web.Application) -> None:
    param = orjson.dumps({"callBackUrl": "https://gw.example/callbacks/kie?gid=g1&token=sekrit-token-value"})
    body = {"code": 200, "data": {"taskId": "echo-1", "state": "generating", "param": param.decode()}}
    await post(client, orjson.dumps(body))
    stored = await pool_of(app).fetchval("SELECT body FROM callback_events")
    assert "sekrit-token-value" not in stored and "token=***" in stored
    assert await pool_of(app).fetchval("SELECT task_id FROM callback_events") == "echo-1"


async def test_a_callback_the_parser_chokes_on_is_stored_raw_and_its_batch_is_not_lost(
    client: TestClient, app: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The parser never raises by contract; this stands in for a bug in it. Callbacks are
    # interpreted a batch at a time, so one bad one must not take its batch-mates down.
    from app.callbacks import rows as callback_rows

    real_parse = callback_rows.parse_callback

    def parse_or_fail(body, query=None, headers=None):  # type: ignore[no-untyped-def]
        if b"poison" in bytes(body):
            raise RuntimeError("parser bug")
        return real_parse(body, query, headers)

    monkeypatch.setattr(callback_rows, "parse_callback", parse_or_fail)
    bodies = [orjson.dumps(market_success(f"batch-{n}")) for n in range(20)]
    bodies.insert(7, b'{"data": {"taskId": "poison-task", "state": "success"}}')
    answers = await asyncio.gather(*(post(client, body) for body in bodies))
    assert answers == [{"ok": True}] * len(bodies)

    rows = await pool_of(app).fetch("SELECT body, task_id, strategy FROM callback_events")
    assert len(rows) == len(bodies), "every callback is stored, the poisoned one included"
    poisoned = [row for row in rows if "poison-task" in row["body"]]
    assert len(poisoned) == 1
    assert poisoned[0]["task_id"] is None and poisoned[0]["strategy"] == "none"
    assert sorted(row["task_id"] for row in rows if row["task_id"]) == sorted(f"batch-{n}" for n in range(20))
