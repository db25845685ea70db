"""The command line: ``python -m app <command>``.

- ``serve``: run the service (the same as ``python main_render.py``);
- ``migrate``: apply the database migrations that are missing, then exit (e.g. as a Render
  pre-deploy command; the service also migrates at startup).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

_MIGRATE_TIMEOUT_S = 60.0


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the process exit code (2 for a usage or configuration error)."""
    parser = argparse.ArgumentParser(prog="python -m app", description="KIE Gateway.")
    commands = parser.add_subparsers(dest="command", metavar="command")
    commands.add_parser("serve", help="run the service (same as python main_render.py)")
    commands.add_parser("migrate", help="apply missing database migrations and exit")
    args = parser.parse_args(argv)
    if args.command in (None, "serve"):
        from app.main import main as serve

        return serve()
    return _migrate()  # argparse allows no other command


def _migrate() -> int:
    from app.main import settings_or_exit

    settings = settings_or_exit()
    if settings is None:
        return 2
    from app.wiring import make_database

    async def run() -> int:
        database = make_database(settings)
        failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        database.on_fatal = lambda exc: None if failed.done() else failed.set_result(exc)
        database.start()  # connects with backoff and migrates, as the service does at startup
        ready = asyncio.ensure_future(database.ready.wait())
        waiters: set[asyncio.Future[Any]] = {ready, failed}
        try:
            await asyncio.wait(waiters, timeout=_MIGRATE_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            await database.close()
        if failed.done():
            print(f"migrate: {failed.result()}", file=sys.stderr)
            return 1
        if not database.ready.is_set():
            print(
                f"migrate: the database was not reachable within {_MIGRATE_TIMEOUT_S:.0f} s", file=sys.stderr
            )
            return 1
        print("migrate: the schema is up to date")
        return 0

    return asyncio.run(run())
