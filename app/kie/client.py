"""The KIE API client: create a task and query it, for every family, normalised; and get a fresh
link for a result file whose URL expired.

KIE answers HTTP 200 with a business ``code`` inside (``msg`` or ``message``
beside it); both levels are checked. Retries use capped, jittered backoff on
429, 455, 5xx and connection failures, but a create is retried only when it
surely did not create anything: every documented code has its meaning
(``app.kie.errors``), and a timeout or an unexplained server error after the
request went out raises :class:`KieUncertain` instead, which the caller
resolves without a blind retry.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from app.backoff import Backoff
from app.kie.endpoints import CREDITS_PATH, DOWNLOAD_URL_PATH, ENDPOINTS
from app.kie.errors import (
    CreateOutcome,
    KieAuthError,
    KieCreditsError,
    KieError,
    KieRefused,
    KieUncertain,
    create_meaning,
)
from app.kie.parse import ParsedCallback, parse_status
from app.kie.rate_limit import RateLimitTimeout, SlidingWindowLimiter
from app.logs import get_logger

log = get_logger(__name__)

__all__ = ["KieAuthError", "KieClient", "KieCreditsError", "KieError", "KieRefused", "KieUncertain"]

# Status queries, credits and download links are safe to repeat on these.
_RETRYABLE_CODES = frozenset({429, 455, 500, 502, 503, 550})
_MAX_ATTEMPTS = 4
_LIMIT_WAIT_S = 30.0


class KieClient:
    """One aiohttp session to KIE, with per-endpoint limits and bounded retries."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        create_limit: tuple[int, float] = (20, 10.0),
        status_limit: tuple[int, float] = (10, 1.0),
        timeout_s: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(10.0, timeout_s))
        self._create_limit = SlidingWindowLimiter(*create_limit)
        self._status_limit = SlidingWindowLimiter(*status_limit)
        self._backoff_template = backoff or Backoff(base=0.5, cap=8.0)
        self._session: aiohttp.ClientSession | None = None
        self.last_error: str | None = None
        self.auth_failed = False
        self.requests = 0

    async def start(self) -> None:
        """Open the HTTP session."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={"Authorization": f"Bearer {self._api_key}"},
                json_serialize=lambda value: orjson.dumps(value).decode(),
            )

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def create_task(
        self,
        family: str,
        kie_model: str | None,
        input: dict[str, Any],
        callback_url: str,
        sending: asyncio.Event | None = None,
    ) -> str:
        """Create one KIE task and return its id.

        Raises KieRefused (nothing was created; its ``meaning`` says whether to retry later or
        fail), KieAuthError, KieCreditsError, KieError (the connection was never made), or
        KieUncertain (a task may have been created).
        ``sending`` is set just before the request may leave this process, so a caller that is
        cancelled can tell whether KIE could have seen it.
        """
        endpoints = ENDPOINTS[family]
        if endpoints.body == "wrapped":
            body: dict[str, Any] = {"model": kie_model, "callBackUrl": callback_url, "input": input}
        else:
            body = {**input, "callBackUrl": callback_url}
            if endpoints.sends_model and kie_model:
                body["model"] = kie_model
        envelope = await self._call(
            "POST", endpoints.create, self._create_limit, json_body=body, creates=family, sending=sending
        )
        data = envelope.get("data")
        task_id = data.get("taskId") or data.get("task_id") if isinstance(data, dict) else None
        if not task_id:
            # KIE said success without an id: we cannot tell whether a task exists.
            raise KieUncertain("create answered without a task id")
        return str(task_id)

    async def get_status(self, family: str, task_id: str) -> ParsedCallback:
        """The task's state at KIE (the final authority), read like a callback."""
        envelope = await self._call(
            "GET", ENDPOINTS[family].status, self._status_limit, params={"taskId": task_id}
        )
        return parse_status(family, envelope, task_id)

    async def download_url(self, url: str) -> str:
        """A fresh link (valid about 20 minutes) to a file KIE made, for a result URL that expired.

        Raises KieError; KIE answers 422 for URLs it did not make.
        """
        envelope = await self._call("POST", DOWNLOAD_URL_PATH, self._status_limit, json_body={"url": url})
        fresh = envelope.get("data")
        if not isinstance(fresh, str) or not fresh.startswith(("http://", "https://")):
            raise KieError(None, "the download-url answer holds no URL")
        return fresh

    async def credits(self) -> int:
        """The account's remaining credits (also a cheap check that the key works)."""
        envelope = await self._call("GET", CREDITS_PATH, self._status_limit)
        return int(envelope.get("data") or 0)

    async def _call(
        self,
        method: str,
        path: str,
        limiter: SlidingWindowLimiter,
        *,
        json_body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        creates: str | None = None,
        sending: asyncio.Event | None = None,
    ) -> dict[str, Any]:
        """One KIE call with bounded retries; ``creates`` is the family of a create request."""
        if self._session is None:
            raise RuntimeError("KieClient.start() was not called")
        backoff = Backoff(self._backoff_template.base, self._backoff_template.cap)
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                async with limiter.slot(_LIMIT_WAIT_S):
                    self.requests += 1
                    if sending is not None:
                        sending.set()
                    async with self._session.request(
                        method, self.base_url + path, json=json_body, params=params
                    ) as response:
                        http_status = response.status
                        raw = await response.read()
            except RateLimitTimeout as exc:
                raise KieError(429, f"local rate limit: {exc}") from exc
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                # The connection was never made, so nothing reached KIE: safe to try again.
                error: Exception = KieError(None, f"connection failed: {type(exc).__name__}")
                retryable = True
            except (TimeoutError, aiohttp.ClientError) as exc:
                if creates is not None:
                    # The request may have been processed; a retry could create a second task.
                    raise KieUncertain(f"no answer to the create request: {type(exc).__name__}") from exc
                error, retryable = KieError(None, f"request failed: {type(exc).__name__}"), True
            else:
                envelope = _envelope(raw)
                code = _code(envelope, http_status)
                message = _message(envelope, http_status)
                if code == 200:
                    self.last_error = None
                    self.auth_failed = False
                    return envelope
                if code == 401:
                    self.auth_failed = True
                    self.last_error = f"KIE 401: {message}"
                    raise KieAuthError(code, message)
                if code == 402:
                    raise KieCreditsError(code, message)
                if creates is not None:
                    meaning = create_meaning(code, creates)
                    if meaning.outcome is CreateOutcome.UNCERTAIN or http_status >= 500:
                        # An unexplained server error does not prove that no task was made.
                        raise KieUncertain(f"KIE answered {code} to the create request: {message}")
                    error = KieRefused(code, message, meaning)
                    retryable = meaning.outcome is CreateOutcome.RETRY_LATER
                else:
                    error = KieError(code, message)
                    retryable = code in _RETRYABLE_CODES or http_status >= 500
            self.last_error = str(error)
            if not retryable or attempt == _MAX_ATTEMPTS:
                raise error
            delay = backoff.next_delay()
            log.warning("kie.retry", path=path, attempt=attempt, error=str(error), retry_in_s=round(delay, 2))
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")


def _envelope(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _code(envelope: dict[str, Any], http_status: int) -> int:
    if http_status != 200:
        return http_status
    try:
        return int(envelope.get("code", 200))
    except (TypeError, ValueError):
        return 500


def _message(envelope: dict[str, Any], http_status: int) -> str:
    for key in ("msg", "message"):
        value = envelope.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:500]
    return f"HTTP {http_status}"
