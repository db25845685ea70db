"""A reference point for bench/callbacks.py: the least a durable acknowledgement costs.

aiohttp plus a group commit of the raw body into a table of its own, and nothing
else: no parsing, verification, logging, metrics, middleware or applying. The gap
between this and the bare handler is the price of durability itself; the gap
between this and the service is the price of everything the service does with a
callback.
"""

import asyncio
import os

import asyncpg
import orjson
from aiohttp import web

_INSERT = """
INSERT INTO bench_floor (intake_id, body)
SELECT intake_id, body FROM json_to_recordset($1::json) AS t(intake_id text, body text)
"""


class Floor:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.pending: list[tuple[dict, asyncio.Future]] = []
        self.ready = asyncio.Event()

    async def writer(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            while self.pending:
                batch, self.pending = self.pending[:256], self.pending[256:]
                try:
                    async with self.pool.acquire() as conn:
                        await conn.execute(_INSERT, orjson.dumps([row for row, _f in batch]).decode())
                except Exception as exc:
                    for _row, future in batch:
                        future.set_exception(exc)
                else:
                    for _row, future in batch:
                        future.set_result(None)


async def ack(request: web.Request) -> web.Response:
    body = await request.read()
    floor: Floor = request.app["floor"]
    future = asyncio.get_running_loop().create_future()
    floor.pending.append(({"intake_id": os.urandom(16).hex(), "body": body.decode(errors="replace")}, future))
    floor.ready.set()
    await future
    return web.Response(body=b'{"ok":true}', content_type="application/json")


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def make_app() -> web.Application:
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=2, max_size=4)
    await pool.execute(
        "CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, intake_id text UNIQUE,"
        " received_at timestamptz NOT NULL DEFAULT now(), body text)"
    )
    floor = Floor(pool)
    app = web.Application()
    app["floor"] = floor
    writers = [asyncio.create_task(floor.writer()) for _ in range(2)]
    app["writers"] = writers
    app.router.add_post("/callbacks/kie", ack)
    app.router.add_get("/health", health)
    return app


if __name__ == "__main__":
    web.run_app(make_app(), host="127.0.0.1", port=int(os.environ["PORT"]), access_log=None, print=None)
