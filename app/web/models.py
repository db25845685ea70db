"""GET /api/v1/models: every model we offer, with its required and optional input fields."""

from __future__ import annotations

import orjson
from aiohttp import web

from app.web.keys import runtime_of


async def list_models(request: web.Request) -> web.Response:
    """Every model of the catalog, in catalog order."""
    catalog = runtime_of(request.app).generations.catalog
    models = [
        {
            "id": model.id,
            "family": model.family,
            "output": model.output,
            "title": model.title,
            "required": model.required,
            "optional": model.optional,
            "timeout_s": model.timeout_s,
        }
        for model in catalog.models()
    ]
    return web.json_response({"models": models}, dumps=lambda value: orjson.dumps(value).decode())
