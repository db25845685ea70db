"""Service processes for the process tests: their environment against a KIE server of the test,
starting them, and the usual pair of a leader and a passive instance on one database."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from tests.support.service import ServiceProcess
from tests.support.stack import model_of, valid_input

API_KEY = "process-api-key-0123456789"
KIE_KEY = "process-kie-key"


def service_env(database_url: str, kie: TestServer, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a service on ``database_url`` talking to the KIE server ``kie``."""
    return {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(data_dir),
        "KIE_API_KEY": KIE_KEY,
        "KIE_BASE_URL": str(kie.make_url("")).rstrip("/"),
        "API_KEYS": API_KEY,
        **extra,
    }


def started(services: list[ServiceProcess], env: dict[str, str], log: Path) -> ServiceProcess:
    """Start a service whose PUBLIC_BASE_URL is its own port (stopped by the ``services`` fixture)."""
    service = ServiceProcess(env, log)
    service.env["PUBLIC_BASE_URL"] = service.base_url
    services.append(service.start())
    return service


async def leader_and_passive(
    services: list[ServiceProcess], env: dict[str, str], logs: Path, session: aiohttp.ClientSession
) -> tuple[ServiceProcess, ServiceProcess]:
    """Two instances on one database: ``first`` active, then ``second`` passive beside it."""
    first = started(services, {**env, "INSTANCE_ID": "first"}, logs / "first.log")
    await first.wait_for(session, "/health", lambda b: b["role"] == "active", timeout=30)
    second = started(services, {**env, "INSTANCE_ID": "second"}, logs / "second.log")
    await second.wait_for(session, "/health", lambda b: b["role"] == "passive", timeout=30)
    return first, second


async def create(session: aiohttp.ClientSession, service: ServiceProcess, family: str, output: str) -> str:
    """Create a generation of the family's first model through the service's API; its id."""
    model = model_of(family, output)
    async with session.post(
        service.base_url + "/api/v1/generations",
        json={"model": model.id, "input": valid_input(model)},
        headers={"X-API-Key": API_KEY},
    ) as resp:
        body = await resp.json()
        assert resp.status in (200, 202), body
        return str(body["id"])
