"""Callback intake: parse, verify, store durably, acknowledge, then apply.

The order is the guarantee. A callback is stored (in the inbox table, or in the
on-disk spool when the database is unreachable) before the 200 goes out; it is
applied afterwards, in its own transaction, through the single guarded state
move in ``app.db.generations``. Nothing here ever makes the HTTP answer
anything but 200.

An unverified callback (no valid URL token, no valid KIE signature) never moves
a generation by itself: it only makes the generation due for an immediate
status check, so a forged callback cannot fake a result or a failure.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import functools
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from prometheus_client import Counter

from app.backoff import Backoff
from app.db import callback_events as inbox
from app.db.batching import GroupCommitter, Resolve
from app.db.database import Database, describe_error
from app.db.generations import (
    TERMINAL_STATES,
    Transition,
    adopt_by_gid,
    apply_transition,
    lock_by_task_ids,
    lock_tasks,
    mark_due_many,
    record_task_id,
    touch_callbacks,
)
from app.db.settings_store import get_or_create
from app.kie.callbacks import ParsedCallback, parse_callback
from app.logs import get_logger
from app.metrics import (
    KIE_CALLBACK_APPLY,
    KIE_CALLBACK_ORPHANS,
    KIE_CALLBACK_STRATEGY,
    KIE_CALLBACKS,
)
from app.random_ids import random_hex
from app.redaction import MASK, is_secret_key, redact_text
from app.services.callback_auth import VERIFIED, verify
from app.services.callback_spool import CallbackSpool
from app.supervision import supervise

log = get_logger(__name__)

STORED_BODY_LIMIT = 64 * 1024
_PREVIEW_CHARS = 200
_STORE_TIMEOUT_S = 2.0
_SWEEP_INTERVAL_S = 5.0
_SLOW_SWEEP_S = 60.0
_APPLY_BATCH = 500
_APPLY_BACKLOG = 20_000
_UNAPPLIED_GRACE_S = 5.0
_ORPHAN_TTL_S = 24 * 3600.0
_RETENTION_S = 30 * 24 * 3600.0
_SECRET_KEY = "kie_callback_secret"  # noqa: S105 - the settings key, not the secret
_STORED_HEADERS = (
    "content-type",
    "content-length",
    "user-agent",
    "x-webhook-timestamp",
    "x-task-id",
    "x-request-id",
    "x-forwarded-for",
)


@dataclass(slots=True)
class RawCallback:
    """A callback exactly as received, before any interpretation (treat as read-only)."""

    intake_id: str
    received_at: float
    path: str
    content_type: str | None
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    body_size: int

    @classmethod
    def new(
        cls,
        *,
        path: str,
        content_type: str | None,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        body_size: int,
    ) -> RawCallback:
        """A freshly received callback with a new unique intake id."""
        return cls(random_hex(16), time.time(), path, content_type, query, headers, body, body_size)

    def to_spool(self) -> dict[str, Any]:
        """The JSON record written to the spool (the body base64-encoded, as bytes may be anything)."""
        return {
            "intake_id": self.intake_id,
            "received_at": self.received_at,
            "path": self.path,
            "content_type": self.content_type,
            "query": self.query,
            "headers": self.headers,
            "body_b64": base64.b64encode(self.body).decode(),
            "body_size": self.body_size,
        }

    @classmethod
    def from_spool(cls, record: dict[str, Any]) -> RawCallback:
        """Rebuild a callback from its spool record."""
        return cls(
            intake_id=str(record["intake_id"]),
            received_at=float(record["received_at"]),
            path=str(record.get("path") or "/callbacks/kie"),
            content_type=record.get("content_type"),
            query={str(k): str(v) for k, v in (record.get("query") or {}).items()},
            headers={str(k): str(v) for k, v in (record.get("headers") or {}).items()},
            body=base64.b64decode(record.get("body_b64") or ""),
            body_size=int(record.get("body_size") or 0),
        )


class CallbackIntake:
    """Receives every KIE callback on every instance."""

    def __init__(
        self,
        database: Database,
        spool: CallbackSpool,
        *,
        configured_secret: str | None,
        hmac_key: str | None,
    ) -> None:
        self._database = database
        self._spool = spool
        self._hmac_key = hmac_key
        self.secret: str | None = configured_secret
        self._writer: GroupCommitter[RawCallback, int | None] = GroupCommitter(
            "callback_inbox", self._write, timeout=_STORE_TIMEOUT_S
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._to_apply: list[dict[str, Any]] = []
        self._slow_sweep_at = -_SLOW_SWEEP_S  # the first pass runs the slow sweep too
        self._apply_wake = asyncio.Event()
        self._healthy = False  # the database took our last write; False sends callbacks to the spool
        self.last_error: str | None = None
        self.last_verified_callback_at: float | None = None  # monotonic; "callbacks are flowing"

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background parts; storing waits until the database is ready."""
        self._tasks.append(
            asyncio.create_task(supervise("callbacks.maintenance", self._maintain), name="cb.maint")
        )
        self._tasks.append(
            asyncio.create_task(supervise("callbacks.apply", self._apply_loop), name="cb.apply")
        )

    async def stop(self) -> None:
        """Stop background work; callbacks still arriving go to the spool."""
        self._healthy = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._writer.stop()

    @property
    def spool_pending(self) -> bool:
        """True while callbacks wait on disk for the database."""
        return self._spool.has_pending()

    @property
    def healthy(self) -> bool:
        """True while callbacks go straight to the database."""
        return self._healthy

    # --- receiving ------------------------------------------------------------------------

    async def receive(self, raw: RawCallback) -> str:
        """Store one callback durably; return ``stored``, ``spooled`` or ``lost``. Never raises.

        The callback goes to the group-commit writer as received: the writer parses, verifies
        and stores the whole batch in one pass (interpreting many callbacks together costs far
        less than once per request between HTTP work) and answers each caller once its row is
        committed.
        """
        outcome = "lost"
        try:
            if self._healthy and self.secret is not None:
                try:
                    await self._writer.submit(raw)
                except Exception as exc:  # the database is gone or too slow: the spool takes it
                    self._healthy = False
                    self.last_error = describe_error(exc)
                    log.warning("kie_callback.store_failed", error=self.last_error)
                else:
                    return "stored"  # counted and logged with its batch, by the writer
            await self._spool.append(raw.to_spool())
            self._wake.set()
            outcome = "spooled"
        except Exception as exc:
            self.last_error = describe_error(exc)
            log.exception("kie_callback.lost", intake_id=raw.intake_id, error=self.last_error)
        parsed = parse_callback(raw.body, raw.query, raw.headers)
        _strategy_counter(parsed.strategy).inc()
        _callbacks_counter("pending", outcome).inc()
        log.info(
            "kie_callback.received",
            **_received_fields(
                raw.intake_id,
                parsed.task_id,
                parsed.strategy,
                parsed.as_dict(),
                "pending",
                outcome,
                raw.body_size,
                raw.body[: _PREVIEW_CHARS * 4].decode("utf-8", errors="replace"),
            ),
        )
        return outcome

    def _inbox_row(self, raw: RawCallback, parsed: ParsedCallback, *, spooled: bool) -> inbox.InboxRow:
        return build_inbox_row(raw, parsed, secret=self.secret, hmac_key=self._hmac_key, spooled=spooled)

    def _interpret(self, raw: RawCallback, *, spooled: bool = False) -> inbox.InboxRow:
        """The inbox row of one received callback; never raises, so one odd callback cannot sink a batch."""
        try:
            return self._inbox_row(raw, parse_callback(raw.body, raw.query, raw.headers), spooled=spooled)
        except Exception as exc:  # store it raw all the same: the body is what matters
            log.exception("kie_callback.interpret_failed", intake_id=raw.intake_id, error=repr(exc)[:200])
            return build_inbox_row(
                raw,
                ParsedCallback(strategy="none", shape="unparseable"),
                secret=None,
                hmac_key=None,
                spooled=spooled,
            )

    async def _write(self, raws: list[RawCallback], resolve: Resolve[int | None]) -> None:
        """Interpret a batch, store it (one statement, one commit), release its callers, queue it to apply."""
        pool = self._database.pool
        if pool is None:
            raise ConnectionError("the database is not connected")
        rows = [self._interpret(raw) for raw in raws]
        for strategy, count in collections.Counter(row.strategy for row in rows).items():
            _strategy_counter(strategy).inc(count)
        # No acquire timeout of its own: the group committer bounds the whole write.
        stored = await _store_rows(pool, rows)
        resolve([_event_id(stored.get(row.intake_id)) for row in rows])  # durable: the 200s may go out
        # One line per callback, handed to the log handlers as one batch (the hot path's costliest
        # part was the logging machinery once per line).
        log.info_each(
            "kie_callback.received",
            [
                _received_fields(
                    row.intake_id,
                    row.task_id,
                    row.strategy,
                    row.parsed,
                    row.verification,
                    "stored",
                    row.body_size,
                    row.body,
                )
                for row in rows
            ],
        )
        for verification, count in collections.Counter(row.verification for row in rows).items():
            _callbacks_counter(verification, "stored").inc(count)
        # The applier decides from what we hold in memory; the table is only locked and updated.
        unsettled = [
            _stored_event(entry.event_id, row)
            for row in rows
            if (entry := stored.get(row.intake_id)) is not None and entry.settled_outcome is None
        ]
        if unsettled:
            self._to_apply.extend(unsettled)
            if len(self._to_apply) > _APPLY_BACKLOG:
                # Far behind: forget the oldest; the maintenance sweep finds them in the table.
                del self._to_apply[: len(self._to_apply) - _APPLY_BACKLOG]
            self._apply_wake.set()

    async def _apply_loop(self) -> None:
        """Apply what was stored, in batches, off the acknowledgement path."""
        while True:
            await self._apply_wake.wait()
            self._apply_wake.clear()
            while self._to_apply:
                batch, self._to_apply = self._to_apply[:_APPLY_BATCH], self._to_apply[_APPLY_BATCH:]
                try:
                    await self._apply_stored(batch)
                except Exception as exc:
                    # Stored but not applied: the maintenance sweep applies them shortly.
                    log.warning("kie_callback.apply_failed", events=len(batch), error=describe_error(exc))
                    break

    # --- applying -------------------------------------------------------------------------

    async def apply_events(self, event_ids: list[int]) -> dict[int, str]:
        """Apply stored events in one transaction; return each applied event's outcome."""
        pool = self._database.pool
        if pool is None:
            raise ConnectionError("the database is not connected")
        async with pool.acquire() as conn, conn.transaction():
            # The events themselves are already durable: if a crash loses this commit, the
            # sweep applies them again, so this transaction need not wait for its WAL flush.
            await inbox.skip_commit_flush(conn)
            events = await inbox.lock_unapplied_many(conn, event_ids)
            return await self._apply_locked(conn, events)

    async def _apply_stored(self, events: list[dict[str, Any]]) -> dict[int, str]:
        """:meth:`apply_events` for events this process just stored and still holds in memory."""
        pool = self._database.pool
        if pool is None:
            raise ConnectionError("the database is not connected")
        async with pool.acquire() as conn, conn.transaction():
            await inbox.skip_commit_flush(conn)
            # Only the lock comes from the table: another applier may have taken some of them.
            free = await inbox.lock_unapplied_ids(conn, [event["id"] for event in events])
            return await self._apply_locked(conn, [event for event in events if event["id"] in free])

    async def _apply_locked(
        self, conn: asyncpg.Connection, events: list[asyncpg.Record] | list[dict[str, Any]]
    ) -> dict[int, str]:
        """Decide and apply locked events, oldest first, inside the caller's transaction."""
        if not events:
            return {}
        task_ids = sorted({event["task_id"] for event in events if event["task_id"]})
        # Serialises us with attach_task_id deciding about the same tasks: no orphan is missed.
        await lock_tasks(conn, task_ids)
        generations = {row["task_id"]: row for row in await lock_by_task_ids(conn, task_ids)}
        current = {task_id: row["state"] for task_id, row in generations.items()}
        results: list[inbox.Finished] = []
        due: list[uuid.UUID] = []
        for event in events:
            task_id = event["task_id"]
            verification, detail = event["verification"], None
            generation = generations.get(task_id) if task_id else None
            if not task_id:
                results.append(inbox.Finished(event["id"], "no_task_id", None, verification, None, True))
                continue
            if generation is None and verification in VERIFIED:
                # Our create request is still in flight or in doubt: a verified callback naming our
                # generation tells us its task id (the task-id lock is already held).
                generation = await self._adopt(conn, event["gid"], task_id)
                if generation is not None:
                    generations[task_id] = generation
                    current[task_id] = generation["state"]
            if generation is None:
                # KIE may call back before our create request returned: keep it for attach_task_id.
                results.append(inbox.Finished(event["id"], "orphan", None, verification, None, False))
                continue
            generation_id = generation["id"]
            if verification == "url_token" and event["gid"] != str(generation_id):
                verification, detail = "invalid", "token minted for another generation"
            parsed = _parsed(event["parsed"])
            state = parsed.get("state")
            if verification in VERIFIED:
                self.last_verified_callback_at = time.monotonic()
            if current[task_id] in TERMINAL_STATES:
                outcome = f"ignored:{current[task_id]}"
            elif verification not in VERIFIED or state not in ("running", "succeeded", "failed"):
                # Not trusted, or it does not say: ask KIE, the final authority, right away.
                due.append(generation_id)
                outcome = "check_scheduled"
            else:
                moved = await apply_transition(conn, generation_id, outcome_transition(parsed))
                if moved is not None:
                    current[task_id] = moved.state
                outcome = f"applied:{moved.state}" if moved else f"ignored:{current[task_id]}"
            results.append(inbox.Finished(event["id"], outcome, generation_id, verification, detail, True))
        await touch_callbacks(conn, sorted({r.generation_id for r in results if r.generation_id}))
        await mark_due_many(conn, sorted(set(due)))
        await inbox.finish_many(conn, results)
        for outcome, count in collections.Counter(r.outcome.split(":", 1)[0] for r in results).items():
            _apply_counter(outcome).inc(count)
        return {result.event_id: result.outcome for result in results}

    @staticmethod
    async def _adopt(conn: asyncpg.Connection, gid: str | None, task_id: str) -> asyncpg.Record | None:
        try:
            generation_id = uuid.UUID(gid or "")
        except ValueError:
            return None
        row = await adopt_by_gid(conn, generation_id, task_id)
        if row is not None:
            log.info("kie_callback.task_adopted", generation_id=str(generation_id), task_id=task_id)
        return row

    async def attach_task_id(
        self, conn: asyncpg.Connection, generation_id: uuid.UUID, task_id: str, next_check_at: datetime | None
    ) -> bool:
        """Record KIE's task id on a queued generation and apply any orphan callbacks for it.

        Call inside the caller's transaction. The task-id lock serialises this with an
        applier that is deciding the same task's callback is an orphan, so none is missed.
        """
        await lock_tasks(conn, [task_id])
        if not await record_task_id(conn, generation_id, task_id, next_check_at):
            return False
        orphans = await inbox.lock_unapplied_many(conn, await inbox.orphans_of_task(conn, task_id))
        for event_id, outcome in (await self._apply_locked(conn, orphans)).items():
            log.info("kie_callback.orphan_applied", event_id=event_id, task_id=task_id, outcome=outcome)
        return True

    # --- maintenance: secret, spool replay, sweeps ---------------------------------------------

    async def _maintain(self) -> None:
        backoff = Backoff(base=0.2, cap=2.0)
        while not await self._database.wait_ready(timeout=30):
            pass
        while True:
            try:
                await self._maintenance_pass()
                backoff.reset()
                delay = _SWEEP_INTERVAL_S
            except Exception as exc:
                self._healthy = False
                self.last_error = describe_error(exc)
                delay = backoff.next_delay()
                log.warning("callbacks.maintenance_failed", error=self.last_error, retry_in_s=round(delay, 2))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _maintenance_pass(self) -> None:
        pool = self._database.pool
        if pool is None:
            raise ConnectionError("the database is not connected")
        if self.secret is None:
            self.secret = await get_or_create(pool, _SECRET_KEY, secrets.token_urlsafe(32))
        self._writer.start()
        if self._spool.has_pending():
            replayed = await self._spool.replay(self._store_spooled)
            if replayed:
                log.info("callbacks.spool_replayed", records=replayed)
        if not self._healthy:
            self._healthy = True
            log.info("callbacks.storing_directly")
        if stale := await inbox.unapplied(pool, _UNAPPLIED_GRACE_S, 500):
            await self.apply_events(stale)
        if time.monotonic() - self._slow_sweep_at >= _SLOW_SWEEP_S:
            await self._slow_sweep(pool)
            self._slow_sweep_at = time.monotonic()

    async def _slow_sweep(self, pool: asyncpg.Pool) -> None:
        """Safety nets that scan more of the inbox, run once a minute rather than every pass."""
        # attach_task_id applies orphans as it records a task id; this catches any it could not.
        if adoptable := await inbox.adoptable_orphans(pool, 500):
            await self.apply_events(adoptable)
        expired = await inbox.expire_orphans(pool, _ORPHAN_TTL_S)
        if expired:
            log.info("callbacks.orphans_expired", count=expired)
        # The inbox is an audit trail, not an archive: applied events go after a while.
        pruned = await inbox.prune(pool, _RETENTION_S, 5000)
        if pruned:
            log.info("callbacks.pruned", count=pruned)
        KIE_CALLBACK_ORPHANS.set(await inbox.count_orphans(pool))

    async def _store_spooled(self, records: list[dict[str, Any]]) -> None:
        pool = self._database.pool
        if pool is None:
            raise ConnectionError("the database is not connected")
        rows = [self._interpret(RawCallback.from_spool(record), spooled=True) for record in records]
        stored = await _store_rows(pool, rows)
        if unsettled := sorted(entry.event_id for entry in stored.values() if entry.settled_outcome is None):
            await self.apply_events(unsettled)


def build_inbox_row(
    raw: RawCallback, parsed: ParsedCallback, *, secret: str | None, hmac_key: str | None, spooled: bool
) -> inbox.InboxRow:
    """The inbox row for a callback: verified, with secrets masked and the body truncated."""
    verification, detail, gid = verify(
        query=raw.query,
        headers=raw.headers,
        task_id=parsed.task_id,
        secret=secret,
        hmac_key=hmac_key,
        now=raw.received_at,
    )
    body_text = raw.body[: STORED_BODY_LIMIT * 4].decode("utf-8", errors="replace")
    if "=" in body_text:
        # KIE echoes the create request (our callBackUrl with its token) inside some payloads.
        body_text = redact_text(body_text)
    truncated = raw.body_size > len(raw.body) or len(body_text) > STORED_BODY_LIMIT
    return inbox.InboxRow(
        intake_id=raw.intake_id,
        received_at=datetime.fromtimestamp(raw.received_at, UTC),
        path=raw.path[:500],
        content_type=raw.content_type[:200] if raw.content_type else None,
        query={k[:100]: (MASK if is_secret_key(k) else v[:500]) for k, v in list(raw.query.items())[:50]},
        headers={k: raw.headers[k][:500] for k in _STORED_HEADERS if k in raw.headers},
        body=body_text[:STORED_BODY_LIMIT],
        body_size=raw.body_size,
        body_truncated=truncated,
        task_id=parsed.task_id,
        strategy=parsed.strategy,
        verification=verification,
        verification_detail=detail,
        gid=gid[:100] if gid else None,
        parsed=parsed.as_dict(),
        spooled=spooled,
    )


@functools.cache
def _strategy_counter(strategy: str) -> Counter:
    return KIE_CALLBACK_STRATEGY.labels(strategy=strategy)


@functools.cache
def _apply_counter(outcome: str) -> Counter:
    return KIE_CALLBACK_APPLY.labels(outcome=outcome)


def _event_id(stored: inbox.Stored | None) -> int | None:
    return stored.event_id if stored is not None else None


async def _store_rows(pool: asyncpg.Pool, rows: list[inbox.InboxRow]) -> dict[str, inbox.Stored]:
    """Store rows (trusting only verified callbacks to adopt a generation) and count those settled.

    Rows settled by the INSERT (``no_task_id``, ``orphan``) never reach the applier, so they are
    counted here under the same outcome metric the applier uses.
    """
    async with pool.acquire() as conn:
        stored = await inbox.insert_batch(conn, rows, trusted=VERIFIED)
    settled = collections.Counter(s.settled_outcome for s in stored.values() if s.settled_outcome)
    for outcome, count in settled.items():
        _apply_counter(outcome).inc(count)
    return stored


def _stored_event(event_id: int, row: inbox.InboxRow) -> dict[str, Any]:
    """A just-stored row in the shape :meth:`CallbackIntake._apply_locked` reads from the table."""
    return {
        "id": event_id,
        "task_id": row.task_id,
        "verification": row.verification,
        "verification_detail": row.verification_detail,
        "gid": row.gid,
        "parsed": row.parsed,
    }


@functools.cache
def _callbacks_counter(verified: str, outcome: str) -> Counter:
    return KIE_CALLBACKS.labels(verified=verified, outcome=outcome)


def _parsed(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = orjson.loads(value)
    return value if isinstance(value, dict) else {}


def outcome_transition(parsed: dict[str, Any]) -> Transition:
    """The state move a parsed KIE outcome (callback or status answer) asks for."""
    state = parsed["state"]
    return Transition(
        state=state,
        result_urls=parsed.get("result_urls") if state == "succeeded" else None,
        error=parsed.get("error") if state == "failed" else None,
        error_code=parsed.get("error_code") if state == "failed" else None,
        stage=parsed.get("stage"),
        progress=parsed.get("progress"),
        result_object=parsed.get("result_object") if state == "succeeded" else None,
    )


def _received_fields(
    intake_id: str,
    task_id: str | None,
    strategy: str,
    parsed: dict[str, Any],
    verification: str,
    outcome: str,
    size: int,
    body: str,
) -> dict[str, Any]:
    """The fields of a ``kie_callback.received`` line (the formatter masks secrets in the preview)."""
    return {
        "intake_id": intake_id,
        "task_id": task_id,
        "strategy": strategy,
        "shape": parsed.get("shape"),
        "state": parsed.get("state"),
        "stage": parsed.get("stage"),
        "verification": verification,
        "outcome": outcome,
        "size": size,
        "preview": body[:_PREVIEW_CHARS],
    }
