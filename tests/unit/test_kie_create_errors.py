"""Every documented create error code means what KIE says it means: a refusal that surely created
nothing fails at once (with a message naming the cause), a transient one is retried later, and
only a server error without a documented meaning leaves the outcome unknown. Also the fresh
download link for an expired result URL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.backoff import Backoff
from app.kie.client import KieClient
from app.kie.endpoints import DOWNLOAD_URL_PATH, ENDPOINTS
from app.kie.errors import CreateOutcome, KieAuthError, KieCreditsError, KieError, KieRefused, KieUncertain

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
CALLBACK = "https://gateway.example/callbacks/kie?gid=g&token=t"


class FakeKie:
    """Answers every create (of any family) with one business code, counting the requests."""

    def __init__(self, code: int, msg: str = "as KIE says it", http_status: int = 200) -> None:
        self.code, self.msg, self.http_status = code, msg, http_status
        self.creates = 0
        self.app = web.Application()
        for endpoints in ENDPOINTS.values():
            self.app.router.add_post(endpoints.create, self.create)

    async def create(self, request: web.Request) -> web.Response:
        self.creates += 1
        return web.json_response({"code": self.code, "msg": self.msg, "data": None}, status=self.http_status)


@pytest.fixture
async def kie_client() -> AsyncIterator[Callable[[TestServer], Awaitable[KieClient]]]:
    clients: list[KieClient] = []

    async def make(server: TestServer) -> KieClient:
        client = KieClient(str(server.make_url("")), "key", backoff=Backoff(base=0.001, cap=0.002))
        await client.start()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def create(client: KieClient, family: str = "market") -> str:
    return await client.create_task(family, "some/model", {"prompt": "x"}, CALLBACK, asyncio.Event())


@pytest.mark.parametrize(
    ("code", "family", "cause"),
    [
        (400, "veo", "KIE refused the request under its content policy"),
        (400, "4o", "KIE refused the request under its content policy"),
        (400, "market", "KIE rejected the request as invalid"),
        (404, "market", "KIE does not know this endpoint or model"),
        (422, "market", "KIE rejected the input"),
        (433, "market", "KIE reports that the API key reached its usage limit (sub-key limit)"),
        (451, "veo", "KIE could not fetch an input file"),
        (501, "market", "KIE reports that the generation failed"),
        (505, "market", "KIE has disabled this feature"),
    ],
)
async def test_a_refusal_fails_at_once_and_names_its_cause(
    code: int, family: str, cause: str, aiohttp_server: ServerFactory, kie_client: Any
) -> None:
    fake = FakeKie(code, msg="KIE's own words")
    client = await kie_client(await aiohttp_server(fake.app))
    with pytest.raises(KieRefused) as caught:
        await create(client, family)
    assert caught.value.code == code
    assert caught.value.meaning.outcome is CreateOutcome.FAIL
    assert caught.value.user_message == f"{cause}: KIE's own words"
    assert fake.creates == 1, "a refusal is not sent again"


@pytest.mark.parametrize("code", [429, 455, 550])
async def test_a_transient_refusal_is_retried_with_backoff_then_left_for_later(
    code: int, aiohttp_server: ServerFactory, kie_client: Any
) -> None:
    fake = FakeKie(code)
    client = await kie_client(await aiohttp_server(fake.app))
    with pytest.raises(KieRefused) as caught:
        await create(client)
    assert caught.value.meaning.outcome is CreateOutcome.RETRY_LATER
    assert fake.creates == 4, "nothing was created, so the create may be sent again (bounded)"


@pytest.mark.parametrize(("code", "http_status"), [(500, 200), (200, 502), (599, 200), (408, 200)])
async def test_a_server_error_leaves_the_outcome_unknown_and_is_never_resent(
    code: int, http_status: int, aiohttp_server: ServerFactory, kie_client: Any
) -> None:
    fake = FakeKie(code, http_status=http_status)
    client = await kie_client(await aiohttp_server(fake.app))
    with pytest.raises(KieUncertain):
        await create(client)
    assert fake.creates == 1


async def test_bad_key_and_no_credits_have_their_own_errors(
    aiohttp_server: ServerFactory, kie_client: Any
) -> None:
    client = await kie_client(await aiohttp_server(FakeKie(401).app))
    with pytest.raises(KieAuthError):
        await create(client)
    assert client.auth_failed
    client = await kie_client(await aiohttp_server(FakeKie(402).app))
    with pytest.raises(KieCreditsError):
        await create(client)


async def test_an_undocumented_4xx_is_a_refusal_and_says_its_code(
    aiohttp_server: ServerFactory, kie_client: Any
) -> None:
    client = await kie_client(await aiohttp_server(FakeKie(418, msg="teapot").app))
    with pytest.raises(KieRefused) as caught:
        await create(client)
    assert caught.value.user_message == "KIE refused the request (code 418): teapot"


async def test_a_fresh_download_link_for_an_expired_result(
    aiohttp_server: ServerFactory, kie_client: Any
) -> None:
    asked: list[Any] = []

    async def download_url(request: web.Request) -> web.Response:
        body = await request.json()
        asked.append(body)
        if not body["url"].startswith("https://tempfile.aiquickdraw.com/"):
            return web.json_response(
                {"code": 422, "msg": "Invalid URL (External file URLs are not supported)"}
            )
        return web.json_response({"code": 200, "msg": "success", "data": body["url"] + "?fresh=1"})

    app = web.Application()
    app.router.add_post(DOWNLOAD_URL_PATH, download_url)
    client = await kie_client(await aiohttp_server(app))
    ours = "https://tempfile.aiquickdraw.com/v/result.mp4"
    assert await client.download_url(ours) == ours + "?fresh=1"
    with pytest.raises(KieError) as caught:
        await client.download_url("https://elsewhere.example/x.png")
    assert caught.value.code == 422
    assert asked == [{"url": ours}, {"url": "https://elsewhere.example/x.png"}]
