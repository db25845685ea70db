"""The bot across real service processes: the leader SIGKILLed while generations are in flight
and while a result is being sent, with a Bot API server that accepts a send and then drops the
connection. Nothing may be lost or doubled, except the one album the dropped connection hid."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import asyncpg

from app.kie.simulator import make_app
from tests.support.fake_telegram import FakeBotApi, FakeUser
from tests.support.processes import leader_and_passive, service_env
from tests.support.s3 import S3Server
from tests.support.service import ServiceProcess
from tests.support.stack import ServerFactory, model_of


async def wait_delivered(database_url: str, count: int, timeout: float) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout
        rows: list[asyncpg.Record] = []
        while time.monotonic() < deadline:
            rows = await conn.fetch("SELECT * FROM telegram_deliveries ORDER BY chat_id")
            if len(rows) == count and all(r["state"] == "delivered" for r in rows):
                return rows
            await asyncio.sleep(0.1)
        raise AssertionError(f"not all delivered: {[dict(r) for r in rows]}")
    finally:
        await conn.close()


async def test_a_killed_leader_loses_no_update_doubles_no_generation_and_every_result_arrives(
    s3: S3Server,
    aiohttp_server: ServerFactory,
    database_url: str,
    tmp_path: Path,
    services: list[ServiceProcess],
    session: aiohttp.ClientSession,
) -> None:
    async with FakeBotApi(long_poll_cap=1.0) as fake:
        kie = await aiohttp_server(make_app(latency=1.5))
        env = service_env(
            database_url,
            kie,
            tmp_path / "data",
            **s3.env(s3.new_bucket()),
            TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_BASE=fake.base_url,
            TELEGRAM_MODE="polling",
        )
        first, second = await leader_and_passive(services, env, tmp_path, session)
        await fake.wait_for_call("getUpdates", timeout=20)

        users = [fake.add_user(FakeUser(id=20_000 + i, first_name=f"User{i}")) for i in range(5)]
        # The first result send is carried out but answered only later: the leader dies waiting.
        fake.delay(5.0, method="editMessageMedia", times=1, after_perform=True)
        # The album is accepted and its answer lost: sent again, the one allowed duplicate.
        fake.accept_then_drop(method="sendMediaGroup", times=1)
        for user in users[:4]:
            fake.push_update(fake.make_command("imagine", f"a lamp for {user.first_name}", user=user))
        fake.push_update(
            fake.make_command("generate", f"{model_of('midjourney').id} four owls", user=users[4])
        )

        await fake.wait_for(
            lambda: bool(fake.calls("editMessageMedia")), timeout=40, what="a result send in flight"
        )
        first.process.kill()  # type: ignore[union-attr]
        first.wait(10)
        await second.wait_for(session, "/health", lambda b: b["role"] == "active", timeout=30)

        rows = await wait_delivered(database_url, 5, timeout=120)
        conn = await asyncpg.connect(database_url)
        try:
            updates = await conn.fetch("SELECT state FROM telegram_updates")
            generations = await conn.fetch("SELECT owner, state FROM generations")
        finally:
            await conn.close()
        assert len(updates) == 5 and {u["state"] for u in updates} == {"done"}
        assert sorted(g["owner"] for g in generations) == sorted(f"telegram:{u.id}" for u in users)
        assert {g["state"] for g in generations} == {"succeeded"}
        assert {r["chat_id"] for r in rows} == {u.id for u in users}

        for user in users[:4]:
            kinds = [m.kind for m in fake.chat_messages(user.id)]
            assert kinds == ["photo"], (user.id, kinds)  # edited into place: never a second copy
        album = fake.chat_messages(users[4].id)
        groups = {m.media_group_id for m in album if m.kind == "photo"}
        dropped = [c for c in fake.calls("sendMediaGroup") if c.dropped]
        # The first album was accepted and its answer dropped, so it was sent again: the one
        # duplicate the policy allows, and only because of that dropped connection.
        assert len(dropped) == 1 and len(groups) == 2, (groups, dropped)
        # The send the first leader died in was carried out; the next leader edited the same message.
        first_edit = fake.calls("editMessageMedia")[0]
        assert first_edit.performed and len(fake.calls("editMessageMedia")) >= 5
        assert sum(1 for m in album if m.kind == "photo") == 4 * len(groups)
