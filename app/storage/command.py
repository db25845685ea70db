"""``python -m app mirror``: copy pending results into storage from the command line (cron, or an
operator after an outage), beside a running service on the same database without double work.

``--once`` tries every pending generation once (its backoff ignored) and exits 0 when nothing is
left pending or failed, 1 otherwise, with a summary. ``--continuous`` keeps copying what is due,
every ``--interval`` seconds, until SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import uuid

from app.config import Settings
from app.db import generation_files as queue
from app.db.database import Database
from app.kie.client import KieClient
from app.logs import get_logger
from app.storage.mirror import Mirror
from app.storage.stores import open_store

log = get_logger(__name__)

_READY_TIMEOUT_S = 60.0


async def mirror_command(settings: Settings, *, once: bool, interval_s: float, batch_size: int) -> int:
    """Run the copier; the process exit code."""
    # Imported here: the composition root builds the database the same way the service does.
    from app.wiring import make_database

    database = make_database(settings)
    database.start()
    store = open_store(settings.storage, settings.data_dir)
    # Without a KIE key there is no KIE to ask for fresh links: a closed port refuses at once.
    kie = KieClient(
        "http://127.0.0.1:9" if settings.kie_simulated else settings.kie_base_url,
        settings.kie_api_key or "none",
    )
    await kie.start()
    mirror = Mirror(
        database=database,
        store=store,
        links=kie,
        notifications=None,
        max_bytes=settings.mirror_max_bytes,
        connect_timeout_s=min(10.0, settings.mirror_timeout_s),
        read_timeout_s=settings.mirror_timeout_s,
    )
    try:
        if not await database.wait_ready(_READY_TIMEOUT_S):
            print(f"mirror: the database was not reachable within {_READY_TIMEOUT_S:.0f} s", file=sys.stderr)
            return 1
        if once:
            return await _once(database, mirror, batch_size)
        await _continuous(mirror, interval_s, batch_size)
        return 0
    finally:
        await mirror.close()
        await kie.close()
        if store is not None:
            await store.close()
        await database.close()


async def _once(database: Database, mirror: Mirror, batch_size: int) -> int:
    tried: list[uuid.UUID] = []
    done = failed = retried = 0
    errors: list[str] = []
    while True:
        summary = await mirror.run_once(batch_size=batch_size, ignore_backoff=True, exclude=tried)
        if not summary.claimed:
            break
        tried.extend(summary.ids)
        done, failed, retried = done + summary.done, failed + summary.failed, retried + summary.retried
        errors.extend(summary.errors)
    left = await queue.counts(database.require_pool())
    pending, still_failed = left.get("pending", 0), left.get("failed", 0)
    print(
        f"mirror: copied {done}, failed {failed}, to retry {retried}; "
        f"now pending {pending}, failed {still_failed}"
    )
    for error in errors[:20]:
        print(f"  {error}")
    return 0 if pending == 0 and still_failed == 0 else 1


async def _continuous(mirror: Mirror, interval_s: float, batch_size: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("mirror.continuous", interval_s=interval_s, batch_size=batch_size)
    while not stop.is_set():
        try:
            summary = await mirror.run_once(batch_size=batch_size)
        except Exception as exc:  # the database went away for a moment: try again next round
            log.warning("mirror.pass_failed", error=repr(exc)[:300])
            summary = None
        if summary is not None and summary.claimed >= batch_size:
            continue  # a full batch: more may be due
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval_s):
                await stop.wait()
