"""Shared fixtures: a real PostgreSQL server per session and a fresh database per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest

from app.db.embedded import EmbeddedPostgres
from app.logs import configure_logging
from tests.support.databases import FAST_SETTINGS, TestServer, run
from tests.support.service import ServiceProcess

if TYPE_CHECKING:
    from tests.support.s3 import S3Server

configure_logging("INFO", "text")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestServer]:
    """One PostgreSQL server for the whole session: TEST_DATABASE_URL, or an embedded one."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        server = TestServer(external)
        run(server.create_template())
        yield server
        return
    # Short path: the unix socket lives inside it and socket paths are limited to ~100 bytes.
    data_dir = Path(tmp_path_factory.mktemp("pg", numbered=True))
    embedded = EmbeddedPostgres(data_dir, settings=FAST_SETTINGS)

    async def start() -> str:
        await embedded.start()
        return embedded.admin_dsn()

    server = TestServer(run(start()))
    run(server.create_template())
    try:
        yield server
    finally:
        run(embedded.stop())


@pytest.fixture
async def database_url(pg_server: TestServer) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    dsn = await pg_server.create_database()
    try:
        yield dsn
    finally:
        await pg_server.drop_database(dsn)


@pytest.fixture
async def empty_database_url(pg_server: TestServer) -> AsyncIterator[str]:
    """A fresh database with no schema at all, for migration tests."""
    dsn = await pg_server.create_database(migrated=False)
    try:
        yield dsn
    finally:
        await pg_server.drop_database(dsn)


@pytest.fixture
def services() -> Iterator[list[ServiceProcess]]:
    """Service processes a test started; each is stopped afterwards whatever happened."""
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        service.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client for talking to an in-process stack."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client for talking to service processes."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """One S3-compatible server (moto) per test session; every test makes its own bucket."""
    from tests.support.s3 import s3_server  # moto is a large import: only for tests that use S3

    with s3_server() as server:
        yield server
