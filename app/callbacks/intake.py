"""Callback intake: store every KIE callback durably before it is acknowledged.

The order is the guarantee. A callback is stored (in the inbox table, or in the
on-disk spool when the database is unreachable) before the 200 goes out; it is
applied afterwards by :class:`~app.callbacks.applier.CallbackApplier`. Nothing
here ever makes the HTTP answer anything but 200: :meth:`CallbackIntake.receive`
never raises.

Concurrent callbacks share one INSERT and one commit (group commit): the handler
hands the raw callback over, and the writer parses, verifies and stores the
whole batch in one pass, then answers every caller in it.
"""

from __future__ import annotations

import asyncio
import collections

import asyncpg

from app.callbacks.applier import CallbackApplier
from app.callbacks.rows import RawCallback, interpret, received_fields, row_received_fields
from app.callbacks.spool import CallbackSpool
from app.callbacks.tokens import VERIFIED
from app.db import callback_events as inbox
from app.db.batching import GroupCommitter, Resolve
from app.db.database import Database
from app.db.settings import SharedSecret
from app.kie.parse import parse_callback
from app.logs import get_logger
from app.metrics import callback_apply_counter, callback_strategy_counter, callbacks_counter
from app.redaction import describe_error

log = get_logger(__name__)

_STORE_TIMEOUT_S = 2.0


class CallbackIntake:
    """Receives every KIE callback on every instance (leader or not)."""

    def __init__(
        self,
        database: Database,
        spool: CallbackSpool,
        applier: CallbackApplier,
        secret: SharedSecret,
        *,
        hmac_key: str | None,
    ) -> None:
        self._database = database
        self.spool = spool
        self._applier = applier
        self._secret = secret
        self._hmac_key = hmac_key
        self._writer: GroupCommitter[RawCallback, int | None] = GroupCommitter(
            "callback_inbox", self._write, timeout=_STORE_TIMEOUT_S
        )
        self._healthy = False  # the database took our last write; False sends callbacks to the spool
        self.last_error: str | None = None
        self.spooled_wake = asyncio.Event()  # set when a callback went to the spool

    @property
    def healthy(self) -> bool:
        """True while callbacks go straight to the database."""
        return self._healthy

    @property
    def spool_pending(self) -> bool:
        """True while callbacks wait on disk for the database."""
        return self.spool.has_pending()

    def start_writer(self) -> None:
        """(Re)start the group-commit writer; the spool replay stores through the same database."""
        self._writer.start()

    def store_directly(self) -> None:
        """The database is reachable, the secret known, the spool replayed: store straight to the inbox."""
        self._writer.start()
        if not self._healthy:
            self._healthy = True
            log.info("callbacks.storing_directly")

    def use_spool(self, error: str) -> None:
        """Something failed: send callbacks to the spool until maintenance sees the database back."""
        self._healthy = False
        self.last_error = error

    async def stop(self) -> None:
        """Stop the writer; callbacks still arriving go to the spool."""
        self._healthy = False
        await self._writer.stop()

    async def receive(self, raw: RawCallback) -> str:
        """Store one callback durably; return ``stored``, ``spooled`` or ``lost``. Never raises."""
        outcome = "lost"
        try:
            if self._healthy and self._secret.value is not None:
                try:
                    await self._writer.submit(raw)
                except Exception as exc:  # the database is gone or too slow: the spool takes it
                    self.use_spool(describe_error(exc))
                    log.warning("kie_callback.store_failed", error=self.last_error)
                else:
                    return "stored"  # counted and logged with its batch, by the writer
            await self.spool.append(raw.to_spool())
            self.spooled_wake.set()
            outcome = "spooled"
        except Exception as exc:
            self.last_error = describe_error(exc)
            log.exception("kie_callback.lost", intake_id=raw.intake_id, error=self.last_error)
        parsed = parse_callback(raw.body, raw.query, raw.headers)
        callback_strategy_counter(parsed.strategy).inc()
        callbacks_counter("pending", outcome).inc()
        log.info(
            "kie_callback.received",
            **received_fields(
                intake_id=raw.intake_id,
                task_id=parsed.task_id,
                strategy=parsed.strategy,
                parsed=parsed.as_dict(),
                verification="pending",
                outcome=outcome,
                size=raw.body_size,
                preview=raw.preview(),
            ),
        )
        return outcome

    async def _write(self, raws: list[RawCallback], resolve: Resolve[int | None]) -> None:
        """Interpret a batch, store it (one statement, one commit), release its callers, queue it to apply."""
        pool = self._database.require_pool()
        rows = [interpret(raw, secret=self._secret.value, hmac_key=self._hmac_key) for raw in raws]
        for strategy, count in collections.Counter(row.strategy for row in rows).items():
            callback_strategy_counter(strategy).inc(count)
        # No acquire timeout of its own: the group committer bounds the whole write.
        stored = await store_rows(pool, rows)
        resolve([entry.event_id if (entry := stored.get(row.intake_id)) else None for row in rows])
        # The 200s may go out now. One line per callback, handed to the log handlers as one batch
        # (the hot path's costliest part was the logging machinery once per line).
        log.info_each("kie_callback.received", [row_received_fields(row, "stored") for row in rows])
        for verification, count in collections.Counter(row.verification for row in rows).items():
            callbacks_counter(verification, "stored").inc(count)
        # The applier decides from what we hold in memory; the table is only locked and updated.
        self._applier.enqueue(
            [
                inbox.StoredEvent.from_inbox_row(entry.event_id, row)
                for row in rows
                if (entry := stored.get(row.intake_id)) is not None and entry.settled_outcome is None
            ]
        )

    async def store_spooled(self, records: list[dict[str, object]]) -> None:
        """Store callbacks replayed from the spool (each at most once, by intake id) and apply them."""
        pool = self._database.require_pool()
        rows = [
            interpret(
                RawCallback.from_spool(record),
                secret=self._secret.value,
                hmac_key=self._hmac_key,
                spooled=True,
            )
            for record in records
        ]
        stored = await store_rows(pool, rows)
        if unsettled := sorted(entry.event_id for entry in stored.values() if entry.settled_outcome is None):
            await self._applier.apply_events(unsettled)


async def store_rows(pool: asyncpg.Pool, rows: list[inbox.InboxRow]) -> dict[str, inbox.Stored]:
    """Store rows (trusting only verified callbacks to adopt a generation) and count those settled.

    Rows settled by the INSERT (``no_task_id``, ``orphan``) never reach the applier, so they are
    counted here under the same outcome metric the applier uses.
    """
    async with pool.acquire() as conn:
        stored = await inbox.insert_batch(conn, rows, trusted=VERIFIED)
    settled = collections.Counter(s.settled_outcome for s in stored.values() if s.settled_outcome)
    for outcome, count in settled.items():
        callback_apply_counter(outcome).inc(count)
    return stored
