"""The callback baseline: a bare aiohttp handler that reads the body and answers 200, storing nothing."""

import os

from aiohttp import web


async def ack(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"ok": True})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/callbacks/kie", ack)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), access_log=None, print=None)
