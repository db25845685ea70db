"""Group commit: queued submits share one write, batches are bounded, failures stay in their batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace

import pytest

from app.db import batching
from app.db.batching import GroupCommitter, Resolve

GUARD = 5.0  # seconds any one test may wait for the committer before it counts as hung


class FakeWrite:
    """A stand-in for the database write: records every batch and answers ``r<item>`` per item.

    ``hold(n)`` makes write number ``n`` (0-based) wait until ``release(n)``; ``fail`` maps a write
    number to the exception it raises once released; ``follow_up(n)`` makes write ``n`` resolve
    first and only then wait for its release (quick work after the commit).
    """

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.cancelled: list[int] = []
        self.finished: list[int] = []
        self.fail: dict[int, BaseException] = {}
        self._gates: dict[int, asyncio.Event] = {}
        self._after_resolve: set[int] = set()

    def hold(self, *indexes: int) -> None:
        for index in indexes:
            self._gates[index] = asyncio.Event()

    def follow_up(self, *indexes: int) -> None:
        self.hold(*indexes)
        self._after_resolve.update(indexes)

    def release(self, index: int) -> None:
        self._gates[index].set()

    async def __call__(self, items: list[int], resolve: Resolve[str]) -> None:
        index = len(self.batches)
        self.batches.append(list(items))
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            gate = self._gates.get(index)
            if index in self._after_resolve:
                resolve([f"r{item}" for item in items])
            if gate is not None:
                await gate.wait()
            if index in self.fail:
                raise self.fail[index]
            if index not in self._after_resolve:
                resolve([f"r{item}" for item in items])
            self.finished.append(index)
        except asyncio.CancelledError:
            self.cancelled.append(index)
            raise
        finally:
            self.in_flight -= 1


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Yield to the loop until ``predicate()`` holds (fails the test after ``timeout``)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0)


async def settle(rounds: int = 20) -> None:
    """Give every ready task plenty of turns (to show that something does NOT happen)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


@asynccontextmanager
async def running(committer: GroupCommitter[int, str]) -> AsyncIterator[GroupCommitter[int, str]]:
    """Run ``committer`` for the block; a regression that hangs fails in seconds, not at the suite timeout."""
    committer.start()
    try:
        async with asyncio.timeout(GUARD):
            yield committer
    finally:
        await committer.stop()


@asynccontextmanager
async def first_batch_held(
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> AsyncIterator[tuple[GroupCommitter[int, str], FakeWrite, list[float], asyncio.Future[str]]]:
    """One writer whose first batch (item 0) is in flight and held.

    With ``monkeypatch``, the committer's clock is one the test moves (``now[0]``); the loop's
    own timers (the write's timeout) stay real.
    """
    now = [1000.0]
    if monkeypatch is not None:
        monkeypatch.setattr(batching, "time", SimpleNamespace(monotonic=lambda: now[0]))
    write = FakeWrite()
    write.hold(0)
    async with running(GroupCommitter("t", write, timeout=5, writers=1)) as committer:
        first = committer.submit(0)
        await until(lambda: len(write.batches) == 1)
        yield committer, write, now, first


async def test_submits_queued_during_a_write_go_out_together_in_order() -> None:
    async with first_batch_held() as (committer, write, _now, first):
        assert write.batches == [[0]]  # a lone item goes out at once, nothing waits for company

        submitted: list[int] = []

        async def caller(item: int) -> str:
            future = committer.submit(item)
            submitted.append(item)
            return await future

        callers = [asyncio.create_task(caller(item)) for item in range(1, 11)]
        await until(lambda: len(submitted) == 10)
        await settle()
        assert write.batches == [[0]]  # the writer is still busy with the first batch
        assert not first.done() and not any(task.done() for task in callers)

        write.release(0)
        results = await asyncio.gather(*callers)
        assert await first == "r0"

    assert write.batches == [[0], list(range(1, 11))]
    assert results == [f"r{item}" for item in range(1, 11)]  # each caller gets its own result


async def test_max_batch_caps_the_batch_size() -> None:
    write = FakeWrite()
    write.hold(0)
    async with running(GroupCommitter("t", write, timeout=5, max_batch=3, writers=1)) as committer:
        first = committer.submit(0)
        await until(lambda: len(write.batches) == 1)
        futures = [committer.submit(item) for item in range(1, 9)]
        write.release(0)
        results = await asyncio.gather(first, *futures)

    assert write.batches == [[0], [1, 2, 3], [4, 5, 6], [7, 8]]
    assert results == [f"r{item}" for item in range(9)]


async def test_items_submitted_before_the_writer_runs_are_split_by_max_batch() -> None:
    write = FakeWrite()
    async with running(GroupCommitter("t", write, timeout=5, max_batch=2, writers=1)) as committer:
        futures = [committer.submit(item) for item in range(5)]
        results = await asyncio.gather(*futures)

    assert write.batches == [[0, 1], [2, 3], [4]]
    assert results == [f"r{item}" for item in range(5)]


async def test_two_writers_have_two_writes_in_flight() -> None:
    write = FakeWrite()
    write.hold(0, 1)
    async with running(GroupCommitter("t", write, timeout=5, writers=2)) as committer:
        a = committer.submit(0)
        await until(lambda: len(write.batches) == 1)
        b = committer.submit(1)
        await until(lambda: len(write.batches) == 2)  # starts while write 0 is still blocked
        assert write.in_flight == 2
        assert not a.done() and not b.done()

        write.release(1)  # the second write can finish first
        assert await b == "r1"
        assert not a.done()
        write.release(0)
        assert await a == "r0"

    assert write.batches == [[0], [1]]
    assert write.peak_in_flight == 2


async def test_one_writer_never_has_two_writes_in_flight() -> None:
    write = FakeWrite()
    write.hold(0)
    async with running(GroupCommitter("t", write, timeout=5, writers=1)) as committer:
        committer.start()  # starting again while running adds no writer
        a = committer.submit(0)
        await until(lambda: len(write.batches) == 1)
        b = committer.submit(1)
        await settle()
        assert write.batches == [[0]]
        write.release(0)
        assert await asyncio.gather(a, b) == ["r0", "r1"]

    assert write.batches == [[0], [1]]
    assert write.peak_in_flight == 1


async def test_a_failing_write_fails_exactly_its_batch_and_the_writer_goes_on() -> None:
    boom = RuntimeError("insert failed")
    write = FakeWrite()
    write.hold(0)
    write.fail[0] = boom
    async with running(GroupCommitter("t", write, timeout=5, writers=1)) as committer:
        doomed = [committer.submit(0), committer.submit(1)]
        await until(lambda: len(write.batches) == 1)
        queued = [committer.submit(2), committer.submit(3)]
        write.release(0)

        for future in doomed:
            with pytest.raises(RuntimeError) as raised:
                await future
            assert raised.value is boom
        assert await asyncio.gather(*queued) == ["r2", "r3"]

        assert committer.running
        assert await committer.submit(4) == "r4"

    assert write.batches == [[0, 1], [2, 3], [4]]


async def test_a_hanging_write_is_cut_off_at_the_timeout_and_the_writer_goes_on() -> None:
    timeout = 0.1
    write = FakeWrite()
    write.hold(0)  # never released: write 0 hangs
    async with running(GroupCommitter("t", write, timeout=timeout, writers=1)) as committer:
        loop = asyncio.get_running_loop()
        started = loop.time()
        futures = [committer.submit(0), committer.submit(1)]
        for future in futures:
            with pytest.raises(TimeoutError):
                await future
        elapsed = loop.time() - started
        # Cut off, not hung: a caller waits at most twice the timeout (0.2 s); ten times that
        # is the margin a loaded machine may need.
        assert timeout * 0.5 <= elapsed < timeout * 2 * 10, f"failed after {elapsed:.3f} s"
        assert write.cancelled == [0]  # the hung write itself was cancelled, not left running
        assert write.in_flight == 0

        assert committer.running
        assert await committer.submit(2) == "r2"

    assert write.batches == [[0, 1], [2]]


async def test_an_item_that_waited_longer_than_the_timeout_is_failed_and_not_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with first_batch_held(monkeypatch) as (committer, write, now, first):
        stale = committer.submit(1)
        now[0] += 5.5  # item 1 has now waited 5.5 s for its batch to start
        write.release(0)
        assert await first == "r0"
        with pytest.raises(TimeoutError):
            await stale

        assert await committer.submit(2) == "r2"

    assert write.batches == [[0], [2]]  # item 1 never reached the write


async def test_an_item_younger_than_the_timeout_is_still_written(monkeypatch: pytest.MonkeyPatch) -> None:
    async with first_batch_held(monkeypatch) as (committer, write, now, first):
        old = committer.submit(1)
        now[0] += 4.5
        young = committer.submit(2)
        write.release(0)
        assert await asyncio.gather(first, old, young) == ["r0", "r1", "r2"]

    assert write.batches == [[0], [1, 2]]


async def test_an_item_stuck_behind_a_write_that_blocked_the_loop_is_failed_unwritten() -> None:
    # A write that blocks the whole loop is not cut off by the timeout (no timer can fire), so
    # the item queued behind it really is older than the timeout when its batch is picked.
    timeout = 0.05
    release = asyncio.Event()
    batches: list[list[int]] = []

    async def write(items: list[int], resolve: Resolve[str]) -> None:
        batches.append(list(items))
        if len(batches) == 1:
            await release.wait()
            time.sleep(timeout * 3)  # blocking the loop is the point here
        resolve([f"r{item}" for item in items])

    async with running(GroupCommitter("t", write, timeout=timeout, writers=1)) as committer:
        first = committer.submit(0)
        await until(lambda: len(batches) == 1)
        stale = committer.submit(1)
        release.set()
        assert await first == "r0"
        with pytest.raises(TimeoutError):
            await stale
        assert await committer.submit(2) == "r2"

    assert batches == [[0], [2]]


async def test_a_cancelled_caller_is_not_written() -> None:
    async with first_batch_held() as (committer, write, _now, first):
        gave_up = committer.submit(1)
        kept = committer.submit(2)
        gave_up.cancel()
        write.release(0)
        assert await asyncio.gather(first, kept) == ["r0", "r2"]

    assert write.batches == [[0], [2]]


async def test_submit_needs_a_running_writer_and_stop_fails_what_is_queued() -> None:
    write = FakeWrite()
    write.hold(0)
    committer: GroupCommitter[int, str] = GroupCommitter("t", write, timeout=5, writers=1)
    assert not committer.running
    with pytest.raises(ConnectionError):
        committer.submit(0)

    try:
        async with asyncio.timeout(GUARD):
            committer.start()
            assert committer.running
            in_flight = committer.submit(0)
            await until(lambda: len(write.batches) == 1)
            queued = [committer.submit(1), committer.submit(2)]

            await committer.stop()
            assert not committer.running
            for future in [in_flight, *queued]:
                with pytest.raises(ConnectionError):
                    await future
            assert write.cancelled == [0]
            assert write.batches == [[0]]  # the queued items were never written
            with pytest.raises(ConnectionError):
                committer.submit(3)

            committer.start()  # a stopped committer can start again
            assert committer.running
            assert await committer.submit(4) == "r4"
    finally:
        await committer.stop()
    assert write.batches == [[0], [4]]


async def test_stop_on_a_committer_that_never_started_is_harmless() -> None:
    committer: GroupCommitter[int, str] = GroupCommitter("t", FakeWrite(), timeout=5)
    await committer.stop()
    assert not committer.running


async def test_callers_are_released_at_resolve_before_the_write_returns() -> None:
    write = FakeWrite()
    write.follow_up(0)  # write 0 resolves, then does follow-up work until released
    async with running(GroupCommitter("t", write, timeout=5, writers=1)) as committer:
        futures = [committer.submit(0), committer.submit(1)]
        assert await asyncio.gather(*futures) == ["r0", "r1"]
        assert write.in_flight == 1  # the write is still busy with its follow-up work
        assert write.finished == []

        later = committer.submit(2)
        await settle()
        assert write.batches == [[0, 1]]  # with one writer the next batch waits for the follow-up
        write.release(0)
        assert await later == "r2"

    assert write.finished == [0, 1]


async def test_results_resolved_before_a_failure_or_a_hang_stand() -> None:
    write = FakeWrite()
    write.follow_up(0, 1)
    write.fail[0] = RuntimeError("follow-up failed")
    async with running(GroupCommitter("t", write, timeout=0.1, writers=1)) as committer:
        assert await committer.submit(0) == "r0"
        write.release(0)  # the follow-up raises after the callers already have their results
        assert await committer.submit(1) == "r1"  # write 1's follow-up hangs past the timeout
        await until(lambda: write.cancelled == [1])
        assert await committer.submit(2) == "r2"

    assert write.batches == [[0], [1], [2]]
