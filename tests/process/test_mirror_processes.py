"""Mirroring with real service processes: ``python -m app mirror --once`` beside a running service,
the startup warnings about storage, and a leader killed in the middle of a copy."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import boto3
import pytest

from app.kie.simulator import make_app
from app.kie.simulator.assets import FILES
from tests.support.processes import API_KEY, create, leader_and_passive, service_env, started
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, S3Server
from tests.support.service import ROOT, ServiceProcess
from tests.support.stack import ServerFactory


async def generation(session: aiohttp.ClientSession, service: ServiceProcess, gid: str) -> dict[str, Any]:
    async with session.get(
        f"{service.base_url}/api/v1/generations/{gid}", headers={"X-API-Key": API_KEY}
    ) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def wait_row(database_url: str, gid: str, predicate: Any, timeout: float) -> asyncpg.Record:
    """The generation's row once ``predicate(row)`` holds."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout
        row = None
        while time.monotonic() < deadline:
            row = await conn.fetchrow("SELECT * FROM generations WHERE id = $1", uuid.UUID(gid))
            if row is not None and predicate(row):
                return row
            await asyncio.sleep(0.05)
        raise AssertionError(f"generation {gid} never got there: {dict(row) if row else None}")
    finally:
        await conn.close()


async def mirror_once(env: dict[str, str]) -> tuple[int, str]:
    """``python -m app mirror --once`` with the service's settings: its exit code and output.

    Run without blocking the loop: the KIE simulator it downloads from lives on this loop."""
    keep = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATA_DIR", "STORAGE_URL")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "mirror",
        "--once",
        cwd=ROOT,
        env={**keep, **env, "LOG_FORMAT": "json"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(60):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_mirror_once_beside_a_running_service_reports_broken_storage_then_copies_once(
    aiohttp_server: ServerFactory,
    database_url: str,
    tmp_path: Path,
    services: list[ServiceProcess],
    session: aiohttp.ClientSession,
) -> None:
    kie = await aiohttp_server(make_app(latency=0.1))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    files_dir = data_dir / "files"
    files_dir.write_text("a regular file where the storage directory should be")
    env = service_env(database_url, kie, data_dir)
    service = started(services, env, tmp_path / "service.log")
    await service.wait_for(session, "/health", lambda b: b["role"] == "active", timeout=30)

    gid = await create(session, service, "market", "image")
    row = await wait_row(database_url, gid, lambda r: r["mirror_last_error"] is not None, timeout=30)
    assert row["state"] == "succeeded" and row["mirror_state"] == "pending"

    code, output = await mirror_once(env)
    assert code == 1, output
    assert "to retry 1" in output and "now pending 1, failed 0" in output, output
    assert gid in output and "storage" in output
    row = await wait_row(database_url, gid, lambda r: True, timeout=1)
    assert row["state"] == "succeeded" and row["mirror_state"] == "pending"

    files_dir.unlink()  # storage is back
    code, output = await mirror_once(env)
    assert code == 0, output
    assert "now pending 0, failed 0" in output, output
    row = await wait_row(database_url, gid, lambda r: r["mirror_state"] == "done", timeout=10)
    assert row["state"] == "succeeded"

    # Exactly one copy was made, whichever of the two copiers made it.
    by_command = int(output.split("mirror: copied ", 1)[1].split(",", 1)[0])
    by_service = [e for e in service.events_named("mirror.done") if e.get("id") == gid]
    assert by_command + len(by_service) == 1, (output, by_service)

    body = await generation(session, service, gid)
    assert [f["name"] for f in body["files"]] == ["result-1.png"]
    async with session.get(body["files"][0]["url"]) as resp:
        assert resp.status == 200 and await resp.read() == FILES["png"][1]


@pytest.mark.parametrize(
    ("extra", "event"),
    [({"STORAGE_URL": "none"}, "storage.disabled"), ({"RENDER": "true"}, "storage.local_on_render")],
    ids=["disabled", "local-on-render"],
)
async def test_startup_warns_about_storage_that_will_not_keep_results(
    extra: dict[str, str],
    event: str,
    aiohttp_server: ServerFactory,
    database_url: str,
    tmp_path: Path,
    services: list[ServiceProcess],
    session: aiohttp.ClientSession,
) -> None:
    kie = await aiohttp_server(make_app(latency=0.1))
    service = started(
        services, service_env(database_url, kie, tmp_path / "data", **extra), tmp_path / "s.log"
    )
    detailed = await service.wait_for(
        session,
        "/health/detailed",
        lambda b: b["components"]["storage"]["status"] not in ("starting", "unknown"),
        timeout=30,
    )
    deadline = time.monotonic() + 30
    while not (warnings := service.events_named(event)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(warnings) == 1 and warnings[0]["level"] == "warning", service.log_text()[-3000:]
    storage = detailed["components"]["storage"]
    if extra.get("STORAGE_URL") == "none":
        assert storage["status"] == "disabled"
    else:
        assert storage["kind"] == "local" and "STORAGE_URL" in warnings[0]["message"]


async def test_a_leader_killed_mid_copy_leaves_no_partial_file_and_the_next_leader_finishes(
    s3: S3Server,
    aiohttp_server: ServerFactory,
    database_url: str,
    tmp_path: Path,
    services: list[ServiceProcess],
    session: aiohttp.ClientSession,
) -> None:
    size = 24 * 1024 * 1024
    kie = await aiohttp_server(make_app(latency=0.1, result_bytes=size, file_rate=4 * 1024 * 1024))
    bucket = s3.new_bucket()
    env = service_env(database_url, kie, tmp_path / "data", **s3.env(bucket))
    first, second = await leader_and_passive(services, env, tmp_path, session)

    gid = await create(session, first, "market", "video")
    row = await wait_row(database_url, gid, lambda r: r["mirror_claim"] is not None, timeout=30)
    assert row["state"] == "succeeded" and row["mirror_claim"].startswith("leader:")
    await asyncio.sleep(1.5)  # a few MiB into the copy (4 MiB/s, 6 s in all)

    # Mid-copy: nothing is served and nothing is in the bucket yet.
    body = await generation(session, first, gid)
    assert body["files"] == [] and body["mirror"]["state"] == "pending"
    async with session.get(
        f"{first.base_url}/files/{gid}/result-1.mp4", headers={"X-API-Key": API_KEY}
    ) as resp:
        assert resp.status == 404
    assert objects(s3, bucket) == []

    first.process.kill()  # type: ignore[union-attr]
    first.wait(10)
    await second.wait_for(session, "/health", lambda b: b["role"] == "active", timeout=30)
    row = await wait_row(database_url, gid, lambda r: r["mirror_state"] != "pending", timeout=60)
    assert row["mirror_state"] == "done" and row["state"] == "succeeded"

    body = await generation(session, second, gid)
    expected = FILES["mp4"][1] + bytes(size - len(FILES["mp4"][1]))
    [copy] = body["files"]
    assert copy["bytes"] == size and copy["sha256"] == hashlib.sha256(expected).hexdigest()
    async with session.get(copy["url"]) as resp:
        assert resp.status == 200
        digest, served = hashlib.sha256(), 0
        async for chunk in resp.content.iter_chunked(1024 * 1024):
            digest.update(chunk)
            served += len(chunk)
    assert served == size and digest.hexdigest() == copy["sha256"]
    assert objects(s3, bucket) == [f"results/{gid}/result-1.mp4"]
    assert [e for e in second.events_named("mirror.done") if e.get("id") == gid]


def objects(s3: S3Server, bucket: str) -> list[str]:
    """The keys of the bucket's complete objects (an unfinished multipart upload is none)."""
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    listing = client.list_objects_v2(Bucket=bucket)
    return [item["Key"] for item in listing.get("Contents", [])]
