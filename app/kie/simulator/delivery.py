"""Sending callbacks to the receiver, the way KIE does: POST with a 15 s timeout, a few retries,
and the unpleasant modes on demand (drop, duplicate, early, garbage, delay)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import orjson
from yarl import URL

from app.kie.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from app.kie.simulator.callbacks import PlannedCallback, callback_plan
from app.kie.simulator.state import SimState, SimTask
from app.logs import get_logger

log = get_logger("app.kie.simulator")

CALLBACK_TIMEOUT_S = 15.0  # KIE's documented callback timeout
CALLBACK_RETRIES = 2  # after the first attempt: KIE gives up after 3 failed deliveries
CALLBACK_BACKOFF_S = 0.25  # doubled per retry; KIE's real interval is not documented
# Truncated JSON: what a broken proxy or a half-written body looks like to the receiver.
GARBAGE_BODY = b'{"code": 200, "msg": "success", "data": {"taskId"'


def spawn(state: SimState, coro: Coroutine[Any, Any, object]) -> None:
    """Run a delivery in the background, tracked so cleanup (and reset) can cancel it."""
    task = asyncio.create_task(coro)
    state.deliveries.add(task)
    task.add_done_callback(_delivery_done(state))


def _delivery_done(state: SimState) -> Callable[[asyncio.Task[object]], None]:
    def done(task: asyncio.Task[object]) -> None:
        state.deliveries.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Deliveries catch their own errors; this is a simulator bug, and it must not go unseen.
            log.error("kie_sim.delivery_crashed", error=repr(task.exception()))

    return done


async def run_callbacks(state: SimState, task: SimTask) -> None:
    """Send the task's callbacks at their times (``delay`` mode: ``latency`` later than due)."""
    config = state.config
    loop = asyncio.get_running_loop()
    late = config.latency if config.callbacks == "delay" else 0.0
    for planned in callback_plan(task, config.latency):
        wait = task.created_mono + planned.at * config.latency + late - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        body = orjson.dumps(planned.payload)
        if planned.terminal and config.callbacks == "garbage":
            await _post(state, task, GARBAGE_BODY, kind="garbage")
        await _deliver(state, task, body, stage=_stage_of(planned))
        if planned.terminal and config.callbacks == "duplicate":
            await _deliver(state, task, body, stage=_stage_of(planned))


async def deliver_early(state: SimState, task: SimTask) -> None:
    """``early`` mode: every callback goes out before the create answer does (one attempt each).

    A failed attempt is retried in the background, so a dead receiver holds the create answer up
    for one timeout at most.
    """
    for planned in callback_plan(task, state.config.latency):
        body = orjson.dumps(planned.payload)
        if not await _post(state, task, body, kind=_stage_of(planned)):
            spawn(state, _deliver(state, task, body, stage=_stage_of(planned), first_attempt=1))


def _stage_of(planned: PlannedCallback) -> str:
    data = planned.payload.get("data")
    if isinstance(data, dict) and "callbackType" in data:
        return str(data["callbackType"])
    return "terminal" if planned.terminal else "progress"


async def _deliver(
    state: SimState, task: SimTask, body: bytes, *, stage: str, first_attempt: int = 0
) -> bool:
    """POST one callback, retrying up to ``CALLBACK_RETRIES`` times; False once it gave up."""
    for attempt in range(first_attempt, 1 + CALLBACK_RETRIES):
        if attempt:
            await asyncio.sleep(CALLBACK_BACKOFF_S * 2 ** (attempt - 1))
        if await _post(state, task, body, kind=stage, attempt=attempt):
            return True
    state.callbacks_abandoned += 1
    task.callback_abandoned = True
    log.warning("kie_sim.callback_abandoned", task_id=task.task_id, family=task.family, stage=stage)
    return False


async def _post(state: SimState, task: SimTask, body: bytes, *, kind: str, attempt: int = 0) -> bool:
    """One POST to the task's callBackUrl; True on a 2xx answer. Never raises (but can be cancelled)."""
    assert task.callback_url is not None and state.session is not None
    headers = {"Content-Type": "application/json"}
    if state.config.webhook_hmac_key:
        stamp = int(time.time())
        headers[TIMESTAMP_HEADER] = str(stamp)
        headers[SIGNATURE_HEADER] = sign(state.config.webhook_hmac_key, task.task_id, stamp)
    # The host only: the callback URL's query carries the receiver's per-task secret.
    target = URL(task.callback_url).host
    fields = {
        "task_id": task.task_id,
        "family": task.family,
        "stage": kind,
        "attempt": attempt,
        "host": target,
    }
    try:
        async with state.session.post(
            task.callback_url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT_S),
        ) as response:
            await response.read()
            status = response.status
    except Exception as exc:  # a broken receiver is the receiver's problem: log it, never crash
        if kind != "garbage":
            state.callbacks_failed += 1
        log.warning("kie_sim.callback_failed", error=f"{type(exc).__name__}: {exc}", **fields)
        return False
    if kind == "garbage":
        state.callbacks_garbage += 1
        log.info("kie_sim.garbage_sent", status=status, **fields)
        return True
    if 200 <= status < 300:
        state.callbacks_sent += 1
        log.info("kie_sim.callback_sent", status=status, **fields)
        return True
    state.callbacks_failed += 1
    log.warning("kie_sim.callback_failed", status=status, **fields)
    return False
