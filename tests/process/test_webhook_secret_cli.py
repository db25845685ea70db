"""``python -m app webhook-secret``: the same secret the API hands out, stable across runs."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg

from app.api_keys import owner_of
from tests.support.service import ROOT


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "DATA_DIR", "API_KEYS", "WEBHOOK_SECRET")
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "webhook-secret",
        *args,
        cwd=ROOT,
        env={**keep, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    assert process.returncode == 0 or err, err
    return process.returncode, out.decode()  # the secret alone on stdout; logs go to stderr


async def test_the_cli_prints_the_keys_secret_and_it_is_the_stored_one(
    database_url: str, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path),
        "API_KEYS": "first-key-123456,second-key-123456",
    }
    code, first = await run_cli(env)
    assert code == 0 and first.strip().startswith("whsec_"), first
    code, again = await run_cli(env, "--api-key", "first-key-123456")
    assert code == 0 and again == first, "the first configured key is the default, and its secret is kept"
    code, other = await run_cli(env, "--api-key", "second-key-123456")
    assert code == 0 and other != first, "one secret per API key"
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval(
            "SELECT secret FROM webhook_secrets WHERE owner = $1", owner_of("first-key-123456")
        )
    finally:
        await conn.close()
    assert stored == first.strip()
    code, configured = await run_cli({**env, "WEBHOOK_SECRET": "whsec_" + "A" * 44})
    assert code == 0 and configured.strip() == "whsec_" + "A" * 44
