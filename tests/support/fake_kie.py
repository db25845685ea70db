"""A minimal KIE for tests that need results the simulator cannot give: any result URL (a source
that is gone, slow or too large), served by a real HTTP server like every other part."""

from __future__ import annotations

import uuid

import orjson
from aiohttp import web

from app.kie.endpoints import ENDPOINTS

REFRESHED = web.AppKey("refreshed", list[str])


def kie_with_results(*result_urls: str, fresh_url: str | None = None) -> web.Application:
    """A KIE that accepts every market create and reports success with ``result_urls``.

    Asked for a fresh link (``download-url``), it answers ``fresh_url`` (by default the same URL it
    was asked about) and records each ask in ``app[REFRESHED]``.
    """
    app = web.Application()
    app[REFRESHED] = []

    async def create(request: web.Request) -> web.Response:
        task_id = f"task-{uuid.uuid4().hex}"
        return web.json_response({"code": 200, "msg": "success", "data": {"taskId": task_id}})

    async def status(request: web.Request) -> web.Response:
        data = {
            "taskId": request.query["taskId"],
            "state": "success",
            "resultJson": orjson.dumps({"resultUrls": list(result_urls)}).decode(),
        }
        return web.json_response({"code": 200, "message": "success", "data": data})

    async def download_url(request: web.Request) -> web.Response:
        asked = (await request.json())["url"]
        app[REFRESHED].append(asked)
        return web.json_response({"code": 200, "msg": "success", "data": fresh_url or asked})

    app.router.add_post(ENDPOINTS["market"].create, create)
    app.router.add_get(ENDPOINTS["market"].status, status)
    app.router.add_post("/api/v1/common/download-url", download_url)
    return app
