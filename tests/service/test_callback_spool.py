"""Nothing lost while the database is down: the spool, its replay, and exactly-once storage."""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from app.callbacks.rows import RawCallback
from app.callbacks.spool import CallbackSpool
from app.callbacks.tokens import VERIFIED
from app.config import load_settings
from app.db.embedded import EmbeddedPostgres
from app.web.application import make_web_app
from app.web.keys import runtime_of
from tests.support.callbacks import wait_for_row, wait_until_ready
from tests.support.databases import FAST_SETTINGS

ClientFactory = Callable[[web.Application], Awaitable[TestClient]]


def _raw(i: int) -> RawCallback:
    body = orjson.dumps({"code": 200, "data": {"taskId": f"spooled-{i}", "state": "generating"}})
    return RawCallback.new(
        path="/callbacks/kie",
        content_type="application/json",
        query={},
        headers={},
        body=body,
        body_size=len(body),
    )


async def test_two_hundred_callbacks_while_the_database_is_down_are_stored_exactly_once(
    tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", settings=FAST_SETTINGS)
    dsn = await server.start()
    data_dir = tmp_path / "data"
    try:
        app = make_web_app(load_settings({"DATABASE_URL": dsn, "DATA_DIR": str(data_dir)}))
        client = await aiohttp_client(app)
        await wait_until_ready(app)

        await server.stop()
        semaphore = asyncio.Semaphore(20)

        async def send(i: int) -> int:
            async with semaphore:
                body = orjson.dumps({"code": 200, "data": {"taskId": f"down-{i}", "state": "generating"}})
                resp = await client.post(
                    "/callbacks/kie", data=body, headers={"Content-Type": "application/json"}
                )
                return resp.status

        statuses = await asyncio.gather(*(send(i) for i in range(200)))
        assert statuses == [200] * 200
        spooled = sum(len(p.read_bytes().splitlines()) for p in (data_dir / "spool").glob("*.jsonl"))
        assert spooled == 200, "every callback is on disk before it is acknowledged"

        assert await server.start() == dsn
        check = await asyncpg.connect(dsn)
        try:
            await wait_for_row(
                check, "SELECT count(*) FROM callback_events", predicate=lambda n: n >= 200, timeout=30
            )
            await asyncio.sleep(0.5)  # nothing more may trickle in
            assert await check.fetchval("SELECT count(*) FROM callback_events") == 200
            assert await check.fetchval("SELECT count(DISTINCT task_id) FROM callback_events") == 200
            assert await check.fetchval("SELECT count(*) FROM callback_events WHERE spooled") == 200
        finally:
            await check.close()
        assert list((data_dir / "spool").glob("*.jsonl")) == [], "a replayed file is deleted"
        assert runtime_of(app).callback_intake.healthy
    finally:
        await server.stop()


async def test_a_spool_left_by_a_previous_process_is_replayed_at_startup(
    database_url: str, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    data_dir = tmp_path / "data"
    previous = CallbackSpool(data_dir / "spool")
    for i in range(3):
        await previous.append(_raw(i).to_spool())
    await previous._rotate()  # the previous process is gone: its file is unlocked

    app = make_web_app(load_settings({"DATABASE_URL": database_url, "DATA_DIR": str(data_dir)}))
    await aiohttp_client(app)
    await wait_until_ready(app)
    pool = runtime_of(app).database.pool
    assert pool is not None
    tasks = sorted(r["task_id"] for r in await pool.fetch("SELECT task_id FROM callback_events"))
    assert tasks == ["spooled-0", "spooled-1", "spooled-2"]
    assert list((data_dir / "spool").glob("*.jsonl")) == []


async def test_an_interrupted_replay_stores_nothing_twice(database_url: str, tmp_path: Path) -> None:
    from app.callbacks.rows import build_inbox_row
    from app.db import callback_events as inbox
    from app.kie.callbacks import parse_callback

    spool = CallbackSpool(tmp_path / "spool")
    raws = [_raw(i) for i in range(5)]
    for raw in raws:
        await spool.append(raw.to_spool())

    calls = 0

    async def failing_store(records: list[dict[str, Any]]) -> None:
        nonlocal calls
        calls += 1
        await real_store(records)
        if calls == 1:
            raise ConnectionError("database went away mid-replay")

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:

        async def real_store(records: list[dict[str, Any]]) -> None:
            rows = []
            for record in records:
                raw = RawCallback.from_spool(record)
                rows.append(
                    build_inbox_row(raw, parse_callback(raw.body), secret=None, hmac_key=None, spooled=True)
                )
            await inbox.insert_batch(pool, rows, trusted=VERIFIED)

        with pytest.raises(ConnectionError):
            await spool.replay(failing_store, batch_size=2)
        assert list((tmp_path / "spool").glob("*.jsonl")), "the file stays until every record is stored"
        assert await spool.replay(real_store, batch_size=2) == 5
        assert await pool.fetchval("SELECT count(*) FROM callback_events") == 5
        assert await pool.fetchval("SELECT count(DISTINCT intake_id) FROM callback_events") == 5
        assert list((tmp_path / "spool").glob("*.jsonl")) == []
    finally:
        await pool.close()


async def test_a_torn_last_line_is_skipped_and_a_locked_file_is_left_alone(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    good = orjson.dumps(_raw(1).to_spool())
    (directory / "callbacks-1-dead.jsonl").write_bytes(good + b"\n" + good[: len(good) // 2])
    live = directory / "callbacks-2-live.jsonl"
    live.write_bytes(good + b"\n")
    holder = open(live, "rb")  # noqa: SIM115 - another live process's writer
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
    try:
        seen: list[dict[str, Any]] = []

        async def store(records: list[dict[str, Any]]) -> None:
            seen.extend(records)

        assert await CallbackSpool(directory).replay(store) == 1
        assert len(seen) == 1 and seen[0]["intake_id"] == _raw_id(good)
        assert live.exists(), "a file another process still holds is not claimed"
        assert not (directory / "callbacks-1-dead.jsonl").exists()
    finally:
        holder.close()


def _raw_id(line: bytes) -> str:
    return str(orjson.loads(line)["intake_id"])


async def test_spool_lines_are_private_and_fsynced_one_per_callback(tmp_path: Path) -> None:
    spool = CallbackSpool(tmp_path / "spool")
    await spool.append(_raw(7).to_spool())
    files = list((tmp_path / "spool").glob("*.jsonl"))
    assert len(files) == 1
    assert files[0].stat().st_mode & 0o777 == 0o600
    record = orjson.loads(files[0].read_bytes().splitlines()[0])
    assert RawCallback.from_spool(record).body == _raw(7).body
