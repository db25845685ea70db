"""A whole service in-process (real HTTP, real database) against a real KIE simulator server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.config import load_settings
from app.kie.catalog import Model
from app.kie.catalog_loader import default_catalog
from app.runtime import Runtime
from app.web.application import make_web_app
from app.web.keys import runtime_of
from tests.support.apps import wired
from tests.support.service import free_port

API_KEY = "test-api-key-0123456789"
KIE_KEY = "kie-test-key"

ServerFactory = Callable[..., Awaitable[TestServer]]


@dataclass
class Stack:
    """The service and what it talks to."""

    app: web.Application
    base_url: str
    kie_url: str
    session: aiohttp.ClientSession

    @property
    def pool(self) -> asyncpg.Pool:
        return runtime_of(self.app).database.require_pool()

    @property
    def runtime(self) -> Runtime:
        return runtime_of(self.app)

    async def api(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {"X-API-Key": API_KEY, **kwargs.pop("headers", {})}
        async with self.session.request(method, self.base_url + path, headers=headers, **kwargs) as resp:
            body = await resp.json() if resp.content_type == "application/json" else await resp.text()
            return resp.status, body

    async def create(
        self,
        model: Model,
        input: dict[str, Any] | None = None,
        *,
        webhook_url: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": model.id, "input": input or valid_input(model)}
        if webhook_url is not None:
            payload["webhook_url"] = webhook_url
        status, body = await self.api("POST", "/api/v1/generations", json=payload, **kwargs)
        assert status in (200, 202), body
        return body

    async def wait_state(self, generation_id: str, states: set[str], timeout: float = 20) -> asyncpg.Record:
        deadline = time.monotonic() + timeout
        row = None
        while time.monotonic() < deadline:
            row = await self.pool.fetchrow(
                "SELECT * FROM generations WHERE id = $1", uuid.UUID(generation_id)
            )
            if row is not None and row["state"] in states:
                return row
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"generation {generation_id} never reached {states}: {dict(row) if row else None}"
        )

    async def sim_stats(self) -> dict[str, Any]:
        async with self.session.get(self.kie_url + "/_sim/stats") as resp:
            return await resp.json()

    async def sim_rates(self) -> dict[str, Any]:
        async with self.session.get(self.kie_url + "/_sim/rates") as resp:
            return await resp.json()


def valid_input(model: Model) -> dict[str, Any]:
    """The smallest valid input for a catalog model, built from its own field specs."""
    values: dict[str, Any] = {}
    for name in model.required:
        spec = model.fields[name]
        values[name] = _example(spec)
    return values


def _example(spec: Any) -> Any:
    kind = spec.type
    if kind == "enum":
        return spec.values[0]
    if kind == "url":
        return "https://files.example/input.png"
    if kind == "url_list":
        return ["https://files.example/input.png"]
    if kind == "integer":
        return int(spec.min if spec.min is not None else 1)
    if kind == "number":
        return float(spec.min if spec.min is not None else 1)
    if kind == "boolean":
        return False
    length = max(spec.min_length or 1, 12)
    return ("a calm lake at dawn " * 10)[: min(length, spec.max_length or length)].strip() or "a cat"


def model_of(family: str, output: str | None = None) -> Model:
    """The first catalog model of a family (and output kind)."""
    for model in default_catalog().models():
        if model.family == family and (output is None or model.output == output):
            return model
    raise LookupError(family)


async def start_stack(
    aiohttp_server: ServerFactory,
    session: aiohttp.ClientSession,
    database_url: str,
    data_dir: str,
    kie_url: str,
    **env: str,
) -> Stack:
    """Build and serve the app on a fixed port so its callback URLs point at itself."""
    port = free_port()
    settings = load_settings(
        {
            "DATABASE_URL": database_url,
            "DATA_DIR": data_dir,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "KIE_API_KEY": KIE_KEY,
            "KIE_BASE_URL": kie_url,
            "API_KEYS": API_KEY,
            **env,
        }
    )
    app = make_web_app(settings)
    await aiohttp_server(app, port=port)
    runtime = await wired(app)
    assert await runtime.database.wait_ready(15)
    deadline = time.monotonic() + 15
    while runtime.role != "active" or not runtime.callback_intake.healthy:
        assert time.monotonic() < deadline, "the stack never became active"
        await asyncio.sleep(0.02)
    return Stack(app, f"http://127.0.0.1:{port}", kie_url, session)


async def stack_on(
    aiohttp_server: ServerFactory,
    session: aiohttp.ClientSession,
    database_url: str,
    tmp_path: Path,
    kie: TestServer,
    **env: str,
) -> Stack:
    """:func:`start_stack` against the KIE server ``kie``, with ``DATA_DIR`` under ``tmp_path``."""
    return await start_stack(
        aiohttp_server,
        session,
        database_url,
        str(tmp_path / "data"),
        str(kie.make_url("")).rstrip("/"),
        **env,
    )
