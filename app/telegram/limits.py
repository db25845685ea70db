"""Telegram's sending limits, kept by the one sender (the leader): about one message a second per
chat and thirty a second overall. Hand-written: a few lines of monotonic clocks, where a library
would bring a dependency for the same arithmetic."""

from __future__ import annotations

import asyncio
import time

PER_CHAT_S = 1.0
GLOBAL_PER_S = 30


class SendLimits:
    """Waits until a message to ``chat_id`` may go."""

    def __init__(self, per_chat_s: float = PER_CHAT_S, global_per_s: int = GLOBAL_PER_S) -> None:
        self._per_chat_s = per_chat_s
        self._interval = 1.0 / global_per_s
        self._next_global = 0.0
        self._next_chat: dict[int, float] = {}

    async def wait(self, chat_id: int) -> None:
        """Reserve the next slot for this chat and sleep until it comes."""
        now = time.monotonic()
        at = max(now, self._next_global, self._next_chat.get(chat_id, 0.0))
        self._next_global = at + self._interval
        self._next_chat[chat_id] = at + self._per_chat_s
        if len(self._next_chat) > 10_000:  # forget chats whose slots are long past
            self._next_chat = {c: t for c, t in self._next_chat.items() if t > now}
        if at > now:
            await asyncio.sleep(at - now)

    def hold(self, chat_id: int, seconds: float) -> None:
        """Telegram asked us to wait (429 retry_after) before writing to this chat again."""
        self._next_chat[chat_id] = max(self._next_chat.get(chat_id, 0.0), time.monotonic() + seconds)
