"""Telegram's sending limits, kept by the one sender (the leader): about one message a second per
chat, with a small burst (a status edit and the result right after it go together), and thirty a
second overall. Hand-written: a token bucket per chat is a few lines of monotonic arithmetic, where
a library would bring a dependency for the same thing."""

from __future__ import annotations

import asyncio
import time

PER_CHAT_S = 1.0
BURST = 3
GLOBAL_PER_S = 30


class SendLimits:
    """Waits until a message to ``chat_id`` may go."""

    def __init__(
        self, per_chat_s: float = PER_CHAT_S, burst: int = BURST, global_per_s: int = GLOBAL_PER_S
    ) -> None:
        self._per_chat_s = per_chat_s
        self._tolerance = (burst - 1) * per_chat_s  # how far ahead of its rate a chat may run
        self._interval = 1.0 / global_per_s
        self._next_global = 0.0
        self._tat: dict[int, float] = {}  # chat -> its theoretical arrival time (the GCRA)
        self._held: dict[int, float] = {}

    async def wait(self, chat_id: int) -> None:
        """Take one slot for this chat (and one overall), sleeping until it comes."""
        now = time.monotonic()
        tat = max(self._tat.get(chat_id, now), now)
        at = max(now, tat - self._tolerance, self._held.get(chat_id, 0.0), self._next_global)
        self._tat[chat_id] = max(tat, at) + self._per_chat_s
        self._next_global = at + self._interval
        if len(self._tat) > 10_000:  # forget chats whose buckets are full again
            self._tat = {c: t for c, t in self._tat.items() if t > now}
            self._held = {c: t for c, t in self._held.items() if t > now}
        if at > now:
            await asyncio.sleep(at - now)

    def hold(self, chat_id: int, seconds: float) -> None:
        """Telegram asked us to wait (429 retry_after) before writing to this chat again."""
        self._held[chat_id] = max(self._held.get(chat_id, 0.0), time.monotonic() + seconds)
