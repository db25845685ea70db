"""Delivering webhook events, by the leader, fenced by its epoch: claim due events from the outbox
(with a lease), fix the body at the first attempt, check the target again (DNS may have changed),
POST it signed, and record the attempt. A 2xx within 10 s is success; anything else (redirects are
not followed) is retried on ``WEBHOOK_RETRY_SCHEDULE`` with jitter, then the event is failed. A
receiver that is down for an hour loses nothing: its events wait in the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from datetime import UTC

import aiohttp
import orjson

from app.config import WebhookSettings
from app.db import webhooks as outbox
from app.db.connection import Conn
from app.db.database import Database
from app.db.notifications import Notifications
from app.generations.public import generation_json
from app.generations.service import GenerationService
from app.leader import Fence, LeaderTerm, write_transaction
from app.logs import get_logger
from app.metrics import (
    WEBHOOK_ATTEMPT_SECONDS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_OUTBOX_DEPTH,
    WEBHOOK_OUTBOX_OLDEST,
)
from app.random_ids import random_hex
from app.redaction import describe_error, redact_url
from app.storage.signing import FileLinks
from app.webhooks import signing
from app.webhooks.secrets import WebhookSecrets
from app.webhooks.targets import RefusedTarget, check_target

log = get_logger(__name__)

_TIMEOUT = aiohttp.ClientTimeout(total=10.0, connect=5.0)
_LEASE_S = 60.0
_BATCH = 16
_CONCURRENCY = 8
_IDLE_S = 5.0
_JITTER = 0.1  # each delay is the schedule's, give or take 10%


class WebhookDelivery:
    """The leader's webhook sender."""

    def __init__(
        self,
        *,
        database: Database,
        generations: GenerationService,
        notifications: Notifications,
        secrets: WebhookSecrets,
        links: FileLinks,
        settings: WebhookSettings,
    ) -> None:
        self._database = database
        self._generations = generations
        self._notifications = notifications
        self._secrets = secrets
        self._links = links
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._fence: Fence | None = None

    async def deliveries_of(
        self, generation_id: uuid.UUID
    ) -> tuple[list[outbox.WebhookEvent], list[outbox.Attempt]]:
        """A generation's events and their attempts."""
        return await outbox.for_generation(self._database.require_pool(), generation_id)

    async def requeue(self, generation_id: uuid.UUID) -> int:
        """Put a generation's failed events back in the queue, due now; how many."""
        return await outbox.requeue_failed(self._database.require_pool(), generation_id)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run(self, term: LeaderTerm) -> None:
        """Forever (this term): deliver what is due, then wait for a NOTIFY or the next due time."""
        wake = self._notifications.subscribe(outbox.EVENTS_CHANNEL)
        prefix = f"leader:{term.epoch}:"
        token = prefix + random_hex(6)
        self._fence = term.fenced
        try:
            while True:
                if await self.run_once(token, leader_prefix=prefix):
                    continue
                await self._wait(wake)
        finally:
            self._notifications.unsubscribe(outbox.EVENTS_CHANNEL, wake)

    async def _wait(self, wake: asyncio.Queue[str]) -> None:
        pool = self._database.require_pool()
        due = await outbox.next_due(pool)
        depth, oldest = await outbox.depth(pool)
        WEBHOOK_OUTBOX_DEPTH.set(depth)
        WEBHOOK_OUTBOX_OLDEST.set(oldest)
        timeout = _IDLE_S if due is None else max(0.02, min(_IDLE_S, due.timestamp() - time.time()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await wake.get()

    async def run_once(self, token: str, *, leader_prefix: str | None = None) -> int:
        """Claim and attempt one batch; how many were claimed."""
        async with self._write() as conn:
            events = await outbox.claim(
                conn, token, lease_s=_LEASE_S, limit=_BATCH, leader_prefix=leader_prefix
            )
        slots = asyncio.Semaphore(_CONCURRENCY)

        async def attempt(event: outbox.WebhookEvent) -> None:
            async with slots:
                await self._attempt(event, token)

        await asyncio.gather(*(attempt(event) for event in events))
        return len(events)

    def _write(self) -> contextlib.AbstractAsyncContextManager[Conn]:
        """A transaction fenced by the leader's epoch (a plain one outside a term, in tests)."""
        return write_transaction(self._fence, self._database.require_pool)

    async def _attempt(self, event: outbox.WebhookEvent, token: str) -> None:
        body = await self._body(event, token)
        if body is None:
            return
        status: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            await check_target(event.url, self._settings)
            secret = await self._secrets.secret_for(event.owner)
            headers = signing.headers(secret, event.id, int(time.time()), body)
            async with self._http().post(
                event.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                await resp.read()
        except RefusedTarget as exc:
            error = str(exc)
            WEBHOOK_DELIVERIES.labels("refused").inc()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = describe_error(exc)
        latency_ms = (time.perf_counter() - started) * 1000
        WEBHOOK_ATTEMPT_SECONDS.observe(latency_ms / 1000)
        ok = status is not None and 200 <= status < 300
        if not ok and error is None:
            error = f"the receiver answered {status}"
        async with self._write() as conn:
            await outbox.record_attempt(conn, event.id, status, round(latency_ms, 1), error)
            if ok:
                await outbox.delivered(conn, event.id, token)
            elif event.attempts < len(self._settings.retry_schedule):
                delay = self._settings.retry_schedule[event.attempts] * random.uniform(
                    1 - _JITTER, 1 + _JITTER
                )
                await outbox.retry_in(conn, event.id, token, delay)
            else:
                await outbox.failed(conn, event.id, token)
        outcome = (
            "delivered"
            if ok
            else "retried"
            if event.attempts < len(self._settings.retry_schedule)
            else "failed"
        )
        WEBHOOK_DELIVERIES.labels(outcome).inc()
        log.info(
            "webhook.attempt",
            id=event.id,
            type=event.event_type,
            url=redact_url(event.url),
            status=status,
            outcome=outcome,
            error=error,
        )

    async def _body(self, event: outbox.WebhookEvent, token: str) -> bytes | None:
        """The event's body: fixed at the first attempt, the same bytes on every retry."""
        if event.payload is not None:
            return event.payload.encode()
        generation = await self._generations.get(event.generation_id)
        if generation is None:
            return None
        payload = orjson.dumps(
            {
                "type": event.event_type,
                "timestamp": event.created_at.astimezone(UTC).isoformat(),
                "data": generation_json(generation, self._links),
            },
            default=str,
        ).decode()
        async with self._write() as conn:
            await outbox.set_payload(conn, event.id, token, payload)
        return payload.encode()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        return self._session
