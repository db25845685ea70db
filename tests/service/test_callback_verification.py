"""Verification both ways: our per-generation URL token and KIE's optional signature."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from app.callbacks.tokens import callback_url, url_token, verify
from app.config import load_settings
from app.kie.signature import sign
from app.web.application import make_web_app
from app.web.keys import runtime_of
from tests.support.callbacks import make_generation, market_success, wait_for_row, wait_until_ready

ClientFactory = Callable[[web.Application], Awaitable[TestClient]]
SECRET = "s3cret-for-tests-0123456789"
HMAC_KEY = "kie-webhook-key-for-tests"


def test_callback_url_carries_gid_and_a_token_that_verifies() -> None:
    url = callback_url("https://gw.example.com/", "gen-1", SECRET)
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.netloc == "gw.example.com" and parts.path == "/callbacks/kie"
    query = dict(parse_qsl(parts.query))
    assert query["gid"] == "gen-1" and query["token"] == url_token(SECRET, "gen-1")
    assert verify(query=query, headers={}, task_id="t", secret=SECRET, hmac_key=None) == (
        "url_token",
        None,
        "gen-1",
    )


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ({"gid": "gen-1", "token": "f" * 40}, "token mismatch"),
        ({"gid": "gen-1"}, "gid or token missing"),
        ({"token": "abc"}, "gid or token missing"),
        ({"gid": "gen-2", "token": url_token(SECRET, "gen-1")}, "token mismatch"),
    ],
)
def test_bad_url_tokens_are_invalid(query: dict[str, str], detail: str) -> None:
    verification, why, _gid = verify(query=query, headers={}, task_id="t", secret=SECRET, hmac_key=None)
    assert verification == "invalid" and why == detail


def test_no_credentials_is_none() -> None:
    assert verify(query={}, headers={}, task_id="t", secret=SECRET, hmac_key=None)[0] == "none"
    assert verify(query={}, headers={}, task_id="t", secret=SECRET, hmac_key=HMAC_KEY)[0] == "none"


def _signed(task_id: str, stamp: int, key: str = HMAC_KEY) -> dict[str, str]:
    return {"X-Webhook-Timestamp": str(stamp), "X-Webhook-Signature": sign(key, task_id, stamp)}


def test_kie_signature_valid_stale_wrong_and_for_another_task() -> None:
    now = time.time()
    ok = verify(
        query={}, headers=_signed("t1", int(now)), task_id="t1", secret=SECRET, hmac_key=HMAC_KEY, now=now
    )
    assert ok[0] == "kie_signature"
    stale = _signed("t1", int(now) - 301)
    result = verify(query={}, headers=stale, task_id="t1", secret=SECRET, hmac_key=HMAC_KEY, now=now)
    assert result[0] == "invalid" and "away" in (result[1] or "")
    future = _signed("t1", int(now) + 301)
    assert (
        verify(query={}, headers=future, task_id="t1", secret=SECRET, hmac_key=HMAC_KEY, now=now)[0]
        == "invalid"
    )
    wrong_key = _signed("t1", int(now), key="another-key")
    assert (
        verify(query={}, headers=wrong_key, task_id="t1", secret=SECRET, hmac_key=HMAC_KEY, now=now)[0]
        == "invalid"
    )
    other_task = _signed("t2", int(now))
    assert (
        verify(query={}, headers=other_task, task_id="t1", secret=SECRET, hmac_key=HMAC_KEY, now=now)[0]
        == "invalid"
    )
    garbage = {"X-Webhook-Timestamp": "soon", "X-Webhook-Signature": "x"}
    assert (
        verify(query={}, headers=garbage, task_id="t1", secret=SECRET, hmac_key=HMAC_KEY, now=now)[0]
        == "invalid"
    )


def test_a_valid_signature_with_a_wrong_url_token_is_invalid() -> None:
    now = time.time()
    query = {"gid": "g", "token": "bad"}
    headers = _signed("t1", int(now))
    assert verify(query=query, headers=headers, task_id="t1", secret=SECRET, hmac_key=HMAC_KEY, now=now)[
        0
    ] == ("invalid")


@pytest.fixture
async def signed_app(database_url: str, tmp_path) -> web.Application:  # type: ignore[no-untyped-def]
    env = {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "KIE_CALLBACK_SECRET": SECRET,
        "KIE_WEBHOOK_HMAC_KEY": HMAC_KEY,
    }
    return make_web_app(load_settings(env))


async def test_kie_signed_callbacks_are_applied_and_stale_ones_are_not(
    signed_app: web.Application, aiohttp_client: ClientFactory
) -> None:
    client = await aiohttp_client(signed_app)
    await wait_until_ready(signed_app)
    assert runtime_of(signed_app).callback_secret.value == SECRET, "a configured secret is used as is"
    pool = runtime_of(signed_app).database.pool
    assert pool is not None

    signed_id = await make_generation(signed_app, task_id="sig-ok")
    resp = await client.post(
        "/callbacks/kie",
        data=orjson.dumps(market_success("sig-ok")),
        headers=_signed("sig-ok", int(time.time())),
    )
    assert resp.status == 200
    await wait_for_row(
        pool, "SELECT state FROM generations WHERE id = $1", signed_id, predicate=lambda s: s == "succeeded"
    )

    stale_id = await make_generation(signed_app, task_id="sig-stale")
    resp = await client.post(
        "/callbacks/kie",
        data=orjson.dumps(market_success("sig-stale")),
        headers=_signed("sig-stale", int(time.time()) - 3600),
    )
    assert resp.status == 200
    outcome = await wait_for_row(pool, "SELECT outcome FROM callback_events WHERE task_id = 'sig-stale'")
    assert outcome == "check_scheduled"
    assert await pool.fetchval("SELECT state FROM generations WHERE id = $1", stale_id) == "submitted"
    stored = await pool.fetchval("SELECT headers FROM callback_events WHERE task_id = 'sig-ok'")
    assert "x-webhook-signature" not in stored and "x-webhook-timestamp" in stored


async def test_a_generated_secret_is_shared_through_the_database(
    database_url: str,
    tmp_path,
    aiohttp_client: ClientFactory,  # type: ignore[no-untyped-def]
) -> None:
    secrets = []
    for i in range(2):
        app = make_web_app(load_settings({"DATABASE_URL": database_url, "DATA_DIR": str(tmp_path / f"d{i}")}))
        await aiohttp_client(app)
        await wait_until_ready(app)
        secrets.append(runtime_of(app).callback_secret.value)
    assert secrets[0] and secrets[0] == secrets[1], "two instances must mint and accept the same tokens"
