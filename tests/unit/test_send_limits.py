"""Telegram's sending limits: a burst per chat, then its rate; other chats unaffected; 429 holds.

Whether a send must wait is checked by whether ``wait`` suspends at all (no clock involved);
only the lower bound of a wait is timed, which a busy machine cannot make shorter.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any

from app.telegram.limits import SendLimits


def goes_at_once(wait: Coroutine[Any, Any, None]) -> bool:
    """True when ``wait`` finishes without suspending (no sleep); a suspended one is closed."""
    try:
        wait.send(None)
    except StopIteration:
        return True
    wait.close()
    return False


async def timed(limits: SendLimits, chat_id: int) -> float:
    started = time.monotonic()
    await limits.wait(chat_id)
    return time.monotonic() - started


async def test_a_chat_gets_a_burst_then_its_rate_and_other_chats_never_wait_for_it() -> None:
    limits = SendLimits(per_chat_s=0.2, burst=3, global_per_s=10**9)
    assert all(goes_at_once(limits.wait(1)) for _ in range(3)), "the burst goes at once"
    assert goes_at_once(limits.wait(2)), "another chat has its own bucket"
    assert await timed(limits, 1) >= 0.15, "the fourth waits about one interval (0.2 s)"


async def test_retry_after_holds_the_chat() -> None:
    limits = SendLimits(per_chat_s=0.01, burst=3, global_per_s=10**9)
    limits.hold(7, 0.3)
    assert not goes_at_once(limits.wait(7))
    assert await timed(limits, 7) >= 0.25
    assert goes_at_once(limits.wait(8))


async def test_the_overall_rate_spaces_sends_to_different_chats() -> None:
    limits = SendLimits(per_chat_s=0.01, burst=3, global_per_s=5)
    assert goes_at_once(limits.wait(1))
    assert await timed(limits, 2) >= 0.15, "30/s overall in production; 5/s here: 0.2 s apart"
