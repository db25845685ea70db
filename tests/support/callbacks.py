"""Helpers for callback tests: an app on a real database, generations with task ids, waits."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
from aiohttp import web

from app.db.generations import insert_idempotent
from app.web.keys import runtime_of
from tests.support.apps import wired


async def wait_until_ready(app: web.Application, timeout: float = 15) -> None:
    """Wait until the database is migrated and callbacks are stored directly."""
    runtime = await wired(app, timeout)
    assert await runtime.database.wait_ready(timeout)
    deadline = time.monotonic() + timeout
    while not runtime.callback_intake.healthy:
        assert time.monotonic() < deadline, "callback intake never became ready"
        await asyncio.sleep(0.01)


async def make_generation(
    app: web.Application, *, task_id: str | None = None, model: str = "kling-2.6/text-to-video"
) -> uuid.UUID:
    """A generation row; with ``task_id`` it is ``submitted`` through the real attach path."""
    runtime = runtime_of(app)
    pool = runtime.database.require_pool()
    generation_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await insert_idempotent(
            conn,
            generation_id=generation_id,
            owner="test",
            source="api",
            model=model,
            family="market",
            input={"prompt": "a cat"},
            idempotency_key=None,
            timeout_s=900,
        )
        if task_id is not None:
            assert await runtime.callback_applier.attach_task_id(conn, generation_id, task_id, None)
        else:
            # Keep the app's own submitter away from it: these tests play KIE's part themselves.
            await conn.execute(
                "UPDATE generations SET submit_after = now() + interval '1 hour' WHERE id = $1", generation_id
            )
    return generation_id


def callback_query(app: web.Application, generation_id: uuid.UUID) -> dict[str, str]:
    """The gid/token query KIE would echo back on this generation's callBackUrl."""
    from urllib.parse import parse_qsl, urlsplit

    from app.callbacks.tokens import callback_url

    secret = runtime_of(app).callback_secret.value
    assert secret is not None
    url = callback_url("http://test", str(generation_id), secret)
    return dict(parse_qsl(urlsplit(url).query))


async def wait_for_row(
    pool: asyncpg.Pool, sql: str, *args: Any, timeout: float = 10, predicate: Any = bool
) -> Any:
    """Poll ``sql`` until its first value satisfies ``predicate``; return that value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await pool.fetchval(sql, *args)
        if predicate(value):
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting on {sql!r} {args!r}; last value {value!r}")


def market_success(task_id: str, url: str = "https://files.example/out.mp4") -> dict[str, Any]:
    return {
        "code": 200,
        "msg": "Playground task completed successfully.",
        "data": {"taskId": task_id, "state": "success", "resultJson": f'{{"resultUrls":["{url}"]}}'},
    }


def market_failure(task_id: str) -> dict[str, Any]:
    return {
        "code": 501,
        "msg": "Playground task failed.",
        "data": {"taskId": task_id, "state": "fail", "failCode": "500", "failMsg": "Internal server error"},
    }
