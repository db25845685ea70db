"""Telegram's sending limits: a burst per chat, then one a second; other chats unaffected; 429 holds."""

from __future__ import annotations

import time

from app.telegram.limits import SendLimits


async def timed(limits: SendLimits, chat_id: int) -> float:
    started = time.monotonic()
    await limits.wait(chat_id)
    return time.monotonic() - started


async def test_a_chat_gets_a_burst_then_its_rate_and_other_chats_never_wait_for_it() -> None:
    limits = SendLimits(per_chat_s=0.2, burst=3, global_per_s=1000)
    waits = [await timed(limits, 1) for _ in range(3)]
    assert max(waits) < 0.05, "the burst goes at once"
    assert await timed(limits, 2) < 0.05, "another chat has its own bucket"
    fourth = await timed(limits, 1)
    assert 0.1 <= fourth <= 1.0, fourth  # about one interval (0.2 s), bounded loosely for a busy machine


async def test_retry_after_holds_the_chat() -> None:
    limits = SendLimits(per_chat_s=0.01, burst=3, global_per_s=1000)
    limits.hold(7, 0.3)
    assert await timed(limits, 7) >= 0.25
    assert await timed(limits, 8) < 0.05
