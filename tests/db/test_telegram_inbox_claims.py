"""The inbox claim on a real PostgreSQL: its round-robin cursor over the chats (and the wrap back
to the first chats), updates of no chat, and handled updates marked done by the claim that follows
them, so their chats' next updates come in that same claim."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.db import telegram_updates as inbox
from app.db.database import Database
from tests.support.databases import connected_database


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = await connected_database(database_url)
    yield database
    await database.close()


def ids(claimed: list[inbox.StoredUpdate]) -> list[int]:
    return [u.update_id for u in claimed]


async def states(database: Database) -> dict[int, str]:
    rows = await database.require_pool().fetch("SELECT update_id, state FROM telegram_updates")
    return {int(r["update_id"]): str(r["state"]) for r in rows}


async def test_claims_go_round_the_chats_from_the_cursor_and_wrap(database: Database) -> None:
    pool = database.require_pool()
    # Chats 1, 2 and 3, two updates each: 101/104, 102/105, 103/106.
    rows = [(100 + n, (n - 1) % 3 + 1, {"update_id": 100 + n}) for n in range(1, 7)]
    await inbox.store(pool, rows)

    first = await inbox.claim(pool, "w", lease_s=30, limit=2)
    assert ids(first) == [101, 102], "from the first chat, one update per chat"
    cursor = inbox.next_cursor(first, None)
    assert cursor == 2

    # Chats after 2: only chat 3; then round to the first chats, where chat 1's next update is due
    # now that 101 is marked done (by this very call).
    second = await inbox.claim(pool, "w", lease_s=30, limit=2, after_chat=cursor, done=[101, 102])
    assert ids(second) == [103, 104]
    cursor = inbox.next_cursor(second, cursor)
    assert cursor == 1, "it wrapped round: the cursor is the last chat of the second part"

    third = await inbox.claim(pool, "w", lease_s=30, limit=5, after_chat=cursor, done=[103, 104])
    assert ids(third) == [105, 106]
    assert inbox.next_cursor(third, cursor) == 3
    assert await inbox.claim(pool, "w", lease_s=30, limit=5, after_chat=3, done=[105, 106]) == []
    assert set((await states(database)).values()) == {"done"}


async def test_a_claim_marks_the_handled_updates_done_and_takes_their_chats_next(
    database: Database,
) -> None:
    pool = database.require_pool()
    await inbox.store(pool, [(1, 7, {"update_id": 1}), (2, 7, {"update_id": 2}), (3, 7, {"update_id": 3})])
    assert ids(await inbox.claim(pool, "w", lease_s=30, limit=5)) == [1]
    # In the statement's snapshot update 1 is still pending (it is marked done by the same
    # statement): the walk must skip it and hand out chat 7's next update, not 1 again.
    assert ids(await inbox.claim(pool, "w", lease_s=30, limit=5, done=[1])) == [2]
    assert (await states(database))[1] == "done"
    # Another worker's token marks nothing done: its claim of update 2 stands.
    assert await inbox.claim(pool, "intruder", lease_s=30, limit=5, done=[2]) == []
    assert (await states(database))[2] == "pending"
    assert ids(await inbox.claim(pool, "w", lease_s=30, limit=5, done=[2])) == [3]


async def test_updates_of_no_chat_are_claimed_along_and_not_held_back_by_each_other(
    database: Database,
) -> None:
    pool = database.require_pool()
    await inbox.store(
        pool,
        [(10, None, {"update_id": 10}), (11, None, {"update_id": 11}), (12, 5, {"update_id": 12})],
    )
    assert ids(await inbox.claim(pool, "w", lease_s=30, limit=10)) == [10, 11, 12]
    await inbox.store(pool, [(13, None, {"update_id": 13}), (14, None, {"update_id": 14})])
    # The limit counts them, and the chatless are taken from a cursor's claim too.
    assert ids(await inbox.claim(pool, "w", lease_s=30, limit=1, after_chat=5)) == [13]
    assert ids(await inbox.claim(pool, "w", lease_s=30, limit=1, after_chat=5)) == [14]
