"""Outbound webhooks over HTTP: the caller's signing secret, a generation's deliveries, and a retry
of its failed ones."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app.web.auth import OWNER
from app.web.generations import owned_generation, unavailable_as_503
from app.web.keys import runtime_of


@unavailable_as_503
async def webhook_secret(request: web.Request) -> web.Response:
    """``{"secret": "whsec_..."}``: what the caller verifies our signatures with."""
    secret = await runtime_of(request.app).webhook_secrets.secret_for(request[OWNER])
    return web.json_response({"secret": secret})


@unavailable_as_503
async def list_deliveries(request: web.Request) -> web.Response:
    """Every event of the caller's generation, with its attempts (time, status, latency, error)."""
    generation = await owned_generation(request)
    events, attempts = await runtime_of(request.app).webhook_delivery.deliveries_of(generation.id)
    by_event: dict[str, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_event.setdefault(attempt.event_id, []).append(
            {
                "at": attempt.at.isoformat(),
                "status_code": attempt.status_code,
                "latency_ms": attempt.latency_ms,
                "error": attempt.error,
            }
        )
    body = {
        "deliveries": [
            {
                "id": event.id,
                "event_type": event.event_type,
                "state": event.state,
                "attempts": event.attempts,
                "next_attempt_at": event.next_attempt_at.isoformat() if event.state == "pending" else None,
                "created_at": event.created_at.isoformat(),
                "attempts_log": by_event.get(event.id, []),
            }
            for event in events
        ]
    }
    return web.json_response(body)


@unavailable_as_503
async def retry_deliveries(request: web.Request) -> web.Response:
    """Re-queue the generation's failed events, due now: ``{"requeued": N}``."""
    generation = await owned_generation(request)
    requeued = await runtime_of(request.app).webhook_delivery.requeue(generation.id)
    return web.json_response({"requeued": requeued})
