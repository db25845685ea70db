"""The HTTP surface every later feature relies on: health, metrics, JSON errors, request ids."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.config import load_settings
from app.web.application import make_web_app
from app.web.keys import runtime_of
from tests.support.apps import wired

ClientFactory = Callable[[web.Application], Awaitable[TestClient]]


@pytest.fixture
async def app(database_url: str, tmp_path: Path) -> web.Application:
    app = make_web_app(
        load_settings(
            {"DATABASE_URL": database_url, "INSTANCE_ID": "test-1", "DATA_DIR": str(tmp_path / "data")}
        )
    )

    # Test-only routes, to reach the middleware's handling of bodies and crashes.
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"size": len(await request.read())})

    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("boom: postgresql://user:topsecret@db/x")

    app.router.add_post("/_test/echo", echo)
    app.router.add_get("/_test/crash", crash)
    return app


@pytest.fixture
async def client(app: web.Application, aiohttp_client: ClientFactory) -> TestClient:
    client = await aiohttp_client(app)
    assert await (await wired(app)).database.wait_ready(15)
    return client


async def test_health_is_ok_with_role_instance_version(client: TestClient) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok"
    assert body["role"] in ("starting", "passive", "active")
    assert body["instance"] == "test-1"
    assert body["version"]


async def test_health_detailed_measures_the_database(client: TestClient) -> None:
    resp = await client.get("/health/detailed")
    assert resp.status == 200
    body = await resp.json()
    database = body["components"]["database"]
    assert database["status"] == "up"
    assert isinstance(database["latency_ms"], int | float) and database["latency_ms"] >= 0
    assert database["last_error"] is None
    storage = body["components"]["storage"]
    assert storage["status"] == "up" and storage["latency_ms"] >= 0, "DATA_DIR is writable, and measured"
    for name in ("kie", "telegram"):
        assert body["components"][name]["status"] in ("up", "down", "starting", "disabled")
    assert body["callbacks"]["mode"] in ("direct", "spool")
    assert body["role"] and body["instance"] == "test-1"
    assert set(body["leader"]) >= {"epoch", "since"}


async def test_health_detailed_reports_a_dead_database(client: TestClient, app: web.Application) -> None:
    pool = runtime_of(app).database.pool
    assert pool is not None
    # Kill every session of this test database from the outside: the next probe must see it.
    await pool.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    await pool.close()
    await asyncio.sleep(1.1)  # past the probe's one-second cache
    body = await (await client.get("/health/detailed")).json()
    assert body["components"]["database"]["status"] == "down"
    assert body["components"]["database"]["last_error"]


async def test_unknown_path_is_json_404_with_request_id(client: TestClient) -> None:
    resp = await client.get("/no/such/path")
    assert resp.status == 404
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["error"] == "not_found" and body["message"]
    assert resp.headers["X-Request-Id"]


async def test_wrong_method_is_json_405_with_allow(client: TestClient) -> None:
    resp = await client.post("/health")
    assert resp.status == 405
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["error"] == "method_not_allowed"
    assert "GET" in resp.headers["Allow"]


async def test_oversized_body_is_json_413(client: TestClient) -> None:
    resp = await client.post("/_test/echo", data=b"x" * (2 * 1024 * 1024))
    assert resp.status == 413
    assert resp.content_type == "application/json"
    assert (await resp.json())["error"] == "payload_too_large"


async def test_unexpected_exception_is_json_500_without_secrets(client: TestClient) -> None:
    resp = await client.get("/_test/crash")
    assert resp.status == 500
    assert resp.content_type == "application/json"
    text = await resp.text()
    assert "topsecret" not in text and "boom" not in text
    body = await resp.json()
    assert body["error"] == "internal"
    assert body["request_id"] == resp.headers["X-Request-Id"]


async def test_request_id_is_echoed_when_safe_and_replaced_when_not(client: TestClient) -> None:
    resp = await client.get("/health", headers={"X-Request-Id": "abc-123.def"})
    assert resp.headers["X-Request-Id"] == "abc-123.def"
    resp = await client.get("/health", headers={"X-Request-Id": "bad id\twith spaces" + "x" * 200})
    assert resp.headers["X-Request-Id"] != "bad id\twith spaces" + "x" * 200
    assert len(resp.headers["X-Request-Id"]) == 32


async def test_metrics_parse_and_label_requests_by_route_template(client: TestClient) -> None:
    await client.get("/health")
    await client.get("/no/such/thing/42")
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    families = {family.name: family for family in text_string_to_metric_families(await resp.text())}
    assert "process_resident_memory_bytes" in families
    histogram = families["http_request_duration_seconds"]
    labels = [sample.labels for sample in histogram.samples if sample.name.endswith("_count")]
    assert {"route": "/health", "method": "GET", "status": "200"} in labels
    # The raw path of an unmatched request never becomes a label value.
    assert all("/no/such/thing/42" not in label.get("route", "") for label in labels)
    assert any(label.get("route") == "unmatched" and label.get("status") == "404" for label in labels)


async def test_storage_is_reported_down_when_data_dir_is_not_writable(
    database_url: str, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where DATA_DIR should be")
    app = make_web_app(load_settings({"DATABASE_URL": database_url, "DATA_DIR": str(blocker)}))
    client = await aiohttp_client(app)
    await wired(app)
    body = await (await client.get("/health/detailed")).json()
    assert body["components"]["storage"]["status"] == "down"
    assert body["components"]["storage"]["last_error"]
