"""A create that KIE refuses (and so surely created nothing) fails the generation at once, with a
message that names the cause; the user sees it in the API and in the event envelope."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from app.kie.endpoints import ENDPOINTS
from tests.support.stack import API_KEY, ServerFactory, model_of, start_stack


@pytest.mark.parametrize(
    ("family", "code", "msg", "expected"),
    [
        (
            "veo",
            400,
            "Your prompt was flagged by Website as violating content policies.",
            "KIE refused the request under its content policy: "
            "Your prompt was flagged by Website as violating content policies.",
        ),
        (
            "market",
            433,
            "Sub-key Usage Exceeds Limit",
            "KIE reports that the API key reached its usage limit",
        ),
        ("market", 505, "Feature Disabled", "KIE has disabled this feature: Feature Disabled"),
    ],
)
async def test_a_refused_create_fails_the_generation_at_once(
    family: str,
    code: int,
    msg: str,
    expected: str,
    aiohttp_server: ServerFactory,
    http: aiohttp.ClientSession,
    database_url: str,
    tmp_path: Path,
) -> None:
    creates = 0

    async def refuse(request: web.Request) -> web.Response:
        nonlocal creates
        creates += 1
        return web.json_response({"code": code, "msg": msg, "data": None})

    app = web.Application()
    app.router.add_post(ENDPOINTS[family].create, refuse)
    kie = await aiohttp_server(app)
    stack = await start_stack(aiohttp_server, http, database_url, str(tmp_path / "d"), str(kie.make_url("")))
    created = await stack.create(model_of(family))
    row = await stack.wait_state(created["id"], {"failed", "succeeded", "timed_out"}, timeout=15)
    assert row["state"] == "failed"
    assert row["error"].startswith(expected) and row["error_code"] == str(code)
    assert row["task_id"] is None and row["submit_uncertain_at"] is None
    assert creates == 1, "a refusal is never sent again"
    status, body = await stack.api("GET", f"/api/v1/generations/{created['id']}")
    assert status == 200 and body["error"].startswith(expected)
    async with http.get(
        f"{stack.base_url}/api/v1/generations/{created['id']}/events",
        headers={"X-API-Key": API_KEY},
    ) as resp:
        text = await resp.text()
    assert "event: error" in text and f'"error":"{code}"' in text
