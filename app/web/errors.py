"""JSON error bodies: every error the service answers looks the same."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def json_error(
    status: int,
    error: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """A response with body ``{"error": ..., "message": ..., **extra}``."""
    body: dict[str, Any] = {"error": error, "message": message}
    body.update(extra)
    return web.json_response(body, status=status, headers=headers)
