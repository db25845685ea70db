"""KIE's own documented examples, read by our code: status answers through the real KIE client
(served by a small HTTP server exactly as KIE documents them), callbacks through the parser.

The examples are data copied from KIE's documentation, each with its source
(tests/support/kie_documented_examples.json), so our simulator cannot agree with our mistakes
alone: what KIE says it sends is what these tests feed us.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.kie.callbacks import parse_callback
from app.kie.client import KieClient
from app.kie.endpoints import ENDPOINTS
from app.kie.families import FAMILIES

DATA = json.loads((Path(__file__).parents[1] / "support" / "kie_documented_examples.json").read_text())
EXAMPLES: list[dict[str, Any]] = DATA["examples"]
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


def _id(example: dict[str, Any]) -> str:
    return f"{example['family']}-{example['kind']}-{example['case']}"


def _check(parsed: Any, expect: dict[str, Any]) -> None:
    seen = {name: getattr(parsed, name) for name in expect}
    assert seen == expect
    if expect["state"] == "succeeded":
        assert parsed.cover_url not in parsed.result_urls, "a cover is never one of the results"


def test_every_family_has_documented_examples_of_both_kinds() -> None:
    kinds = {(example["family"], example["kind"]) for example in EXAMPLES}
    missing = [
        (family, kind)
        for family in FAMILIES
        for kind in ("status", "callback")
        if (family, kind) not in kinds
    ]
    assert not missing, f"no documented example for {missing}"
    assert all(example["source"] for example in EXAMPLES)


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e["kind"] == "callback"], ids=_id)
def test_a_documented_callback_reads_as_kie_means_it(example: dict[str, Any]) -> None:
    _check(parse_callback(json.dumps(example["body"]).encode()), example["expect"])


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e["kind"] == "status"], ids=_id)
async def test_a_documented_status_answer_reads_as_kie_means_it(
    example: dict[str, Any], aiohttp_server: ServerFactory
) -> None:
    family, expect = example["family"], example["expect"]
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.query.get("taskId", ""))
        return web.json_response(example["body"])

    app = web.Application()
    app.router.add_get(ENDPOINTS[family].status, answer)
    server = await aiohttp_server(app)
    client = KieClient(str(server.make_url("")), "test-key")
    await client.start()
    try:
        parsed = await client.get_status(family, expect["task_id"])
    finally:
        await client.close()
    assert seen == [expect["task_id"]]
    _check(parsed, expect)
