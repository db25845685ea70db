"""A generation's ``updated_at`` only moves forward, even when the transaction stamping it began
before the row (or its last stamp) was committed: ``now()`` is the transaction's start."""

from __future__ import annotations

import uuid

import asyncpg

from app.db import generations


async def test_a_stamp_from_an_older_transaction_does_not_go_back(database_url: str) -> None:
    early, late = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        early_tx = early.transaction()
        await early_tx.start()
        began = await early.fetchval("SELECT now()")  # this transaction's now(), from here on
        async with late.transaction():
            created, _ = await generations.insert_idempotent(
                late,
                generation_id=uuid.uuid4(),
                owner="api:test",
                source="api",
                model="google/nano-banana",
                family="market",
                input={"prompt": "a fox"},
                idempotency_key=None,
                timeout_s=600,
            )
        assert created.created_at > began
        # The submitter's claim, in the transaction that began before the row existed.
        [claimed] = await generations.claim_queued(early, 1)
        await early_tx.commit()
        assert claimed.updated_at > created.updated_at >= created.created_at
        # And again, from a transaction older than that stamp.
        older = early.transaction()
        await older.start()
        await early.fetchval("SELECT now()")
        async with late.transaction():
            await generations.release_claim(late, created.id, 0, "test")
        after_release = await generations.get_generation(late, created.id)
        assert after_release is not None
        await generations.mark_uncertain(early, created.id, "test")
        await older.commit()
        final = await generations.get_generation(late, created.id)
        assert final is not None and final.updated_at > after_release.updated_at
    finally:
        await early.close()
        await late.close()
