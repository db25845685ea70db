"""The schema and ``app.states`` speak one vocabulary: the CHECK constraints list exactly its states."""

from __future__ import annotations

import re

import asyncpg

from app.states import TERMINAL, State


async def _constraint(conn: asyncpg.Connection, name: str) -> str:
    definition = await conn.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1", name
    )
    assert definition, f"constraint {name} is missing"
    return str(definition)


def _quoted(definition: str) -> set[str]:
    return set(re.findall(r"'([a-z_]+)'", definition))


async def test_the_state_check_lists_exactly_the_states_of_app_states(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert _quoted(await _constraint(conn, "generations_state_check")) == {state.value for state in State}
        finished = _quoted(await _constraint(conn, "generations_finished_when_terminal"))
        assert finished == {state.value for state in TERMINAL}
    finally:
        await conn.close()
