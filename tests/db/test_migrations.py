"""Migrations: recorded once, serialised between concurrent runners, failures named and rolled back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from app.db.migrations import MigrationError, apply_migrations, load_migrations


def test_shipped_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [migration.version for migration in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


async def test_apply_records_versions_and_is_idempotent(empty_database_url: str) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        first = await apply_migrations(conn)
        assert first == [migration.name for migration in load_migrations()]
        assert await apply_migrations(conn) == []
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [row["name"] for row in rows] == first
    finally:
        await conn.close()


async def test_concurrent_runners_apply_each_migration_once(empty_database_url: str) -> None:
    conns = [await asyncpg.connect(empty_database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(apply_migrations(conn) for conn in conns))
        applied = [name for result in results for name in result]
        assert sorted(applied) == sorted(migration.name for migration in load_migrations())
    finally:
        for conn in conns:
            await conn.close()


async def test_the_schema_enforces_the_contract_states(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO generations (id, owner, source, model, family, state) "
                "VALUES (gen_random_uuid(), 'o', 'api', 'm', 'market', 'exploded')"
            )
        await conn.execute(
            "INSERT INTO generations (id, owner, source, model, family, task_id) "
            "VALUES (gen_random_uuid(), 'o', 'api', 'm', 'market', 't1')"
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO generations (id, owner, source, model, family, task_id) "
                "VALUES (gen_random_uuid(), 'o', 'api', 'm', 'market', 't1')"
            )
    finally:
        await conn.close()


async def test_a_failing_migration_names_its_file_and_rolls_back(
    empty_database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE kept_if_all_good (id int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE oops (id int REFERENCES nowhere(id));")
    conn = await asyncpg.connect(empty_database_url)
    try:
        with pytest.raises(MigrationError) as caught:
            await apply_migrations(conn, load_migrations(tmp_path))
        assert "0002_broken.sql" in str(caught.value)
        assert "nowhere" in str(caught.value)
        assert await conn.fetchval("SELECT to_regclass('kept_if_all_good')") is None
    finally:
        await conn.close()


def test_misnamed_and_duplicate_files_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "1_bad.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"1_bad\.sql"):
        load_migrations(tmp_path)
    (tmp_path / "1_bad.sql").unlink()
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="used twice"):
        load_migrations(tmp_path)
