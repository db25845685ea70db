"""The measured state of the bot: ``getMe`` (cached), the mode, and the transport's own view
(webhook set, polling lag, a 409 conflict)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.health.probes import CachedProbe, ComponentHealth

if TYPE_CHECKING:
    from aiogram import Bot

    from app.telegram.transport import TransportState

_CACHE_S = 30.0
_TIMEOUT_S = 5.0


class TelegramProbe:
    """``/health/detailed``'s ``telegram`` entry."""

    def __init__(self, bot: Bot, transport: TransportState) -> None:
        self._bot = bot
        self._transport = transport
        self._probe = CachedProbe(self._measure, ttl_s=_CACHE_S, timeout_s=_TIMEOUT_S)

    async def health(self) -> ComponentHealth:
        """``up`` when getMe answered recently; ``down`` with the last error (a conflict included)."""
        health = await self._probe.health()
        details = {**health.details, **self._transport.details()}
        status, error = health.status, health.last_error
        if status == "up" and self._transport.conflict is not None:
            status, error = "down", self._transport.conflict
        return ComponentHealth(status, health.latency_ms, error, health.checked_at, details)

    async def close(self) -> None:
        """Cancel a measurement in flight."""
        await self._probe.close()

    async def _measure(self) -> dict[str, Any] | None:
        me = await self._bot.get_me()
        return {"username": me.username, "bot_id": me.id}
