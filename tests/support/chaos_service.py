"""The real service plus one singleton that writes ``(epoch, seq)`` rows through the epoch fence.

Run as ``python -m tests.support.chaos_service``; the test creates ``chaos_rows`` first.
"""

from __future__ import annotations

import asyncio

from app.leader import LeaderTerm
from app.main import main
from app.runtime import Runtime

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS chaos_rows (
    id       bigserial PRIMARY KEY,
    epoch    bigint NOT NULL,
    seq      bigint NOT NULL,
    instance text NOT NULL,
    at       timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
_INSERT = "INSERT INTO chaos_rows (epoch, seq, instance) VALUES ($1, $2, $3)"
WRITE_INTERVAL_S = 0.05


def configure(runtime: Runtime) -> None:

    async def writer(term: LeaderTerm) -> None:
        seq = 0
        while True:
            async with term.fenced() as conn:
                await conn.execute(_INSERT, term.epoch, seq, runtime.instance)
            seq += 1
            await asyncio.sleep(WRITE_INTERVAL_S)

    runtime.leader.run_when_active("chaos_writer", writer)


if __name__ == "__main__":
    raise SystemExit(main(configure))
