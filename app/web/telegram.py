"""POST /telegram/webhook: Telegram's updates, on every instance (passive ones too).

The secret header is checked in constant time (401 otherwise); a valid update is stored in the
inbox and only then answered 200; a duplicate is answered 200 and not stored again. While the
database is away the answer is 503, so Telegram keeps the update and sends it again: the opposite
of the KIE callback rule, on purpose, since here the sender keeps what we could not.
"""

from __future__ import annotations

import hmac

import asyncpg
import orjson
from aiohttp import web

from app.logs import get_logger
from app.redaction import describe_error
from app.telegram.updates import NotAnUpdate
from app.web.errors import json_error
from app.web.keys import runtime_of

log = get_logger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
_OK = web.json_response({"ok": True})


async def telegram_webhook(request: web.Request) -> web.Response:
    """Store the update, then 200."""
    bot = runtime_of(request.app).telegram
    if bot is None:
        return json_error(404, "not_found", "the Telegram bot is not enabled (TELEGRAM_BOT_TOKEN)")
    given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given, bot.webhook_secret.encode()):
        return json_error(401, "unauthorized", f"missing or wrong {SECRET_HEADER}")
    try:
        body = await request.read()
        await bot.inbox.receive(orjson.loads(body), raw=body)
    except (orjson.JSONDecodeError, NotAnUpdate) as exc:
        return json_error(400, "invalid_input", f"not a Telegram update: {exc}")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # DatabaseUnavailable is an OSError. Telegram retries a non-2xx answer: nothing is lost.
        log.warning("telegram.webhook_unavailable", error=describe_error(exc))
        return json_error(
            503, "unavailable", "the database is not reachable; retry later", headers={"Retry-After": "5"}
        )
    return web.Response(body=_OK.body, content_type="application/json")
