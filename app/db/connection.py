"""What query functions run on: a connection (direct, or borrowed from the pool) inside the
caller's transaction, or the pool itself for a single statement."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy
Executor: TypeAlias = Conn | asyncpg.Pool
