"""The command line: ``python -m app <command>``.

- ``serve``: run the service (the same as ``python main_render.py``);
- ``migrate``: apply the database migrations that are missing, then exit (e.g. as a Render
  pre-deploy command; the service also migrates at startup);
- ``mirror --once [--batch-size N]`` / ``mirror --continuous --interval S --batch-size N``: copy
  pending results into storage (see ``app.storage.command``);
- ``webhook-secret [--api-key KEY]``: print the signing secret of an API key's webhooks (default:
  the first of ``API_KEYS``, or the generated key in ``DATA_DIR/api_key``).
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
    mirror = commands.add_parser("mirror", help="copy pending results into storage")
    mode = mirror.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true", help="try every pending generation once, then exit")
    mode.add_argument("--continuous", action="store_true", help="keep copying until SIGINT or SIGTERM")
    mirror.add_argument("--interval", type=_positive, default=10.0, help="seconds between rounds (10)")
    mirror.add_argument("--batch-size", type=int, choices=range(1, 1001), default=16, metavar="N")
    secret = commands.add_parser("webhook-secret", help="print an API key's webhook signing secret")
    secret.add_argument("--api-key", default=None, help="the API key (default: the first configured)")
    args = parser.parse_args(argv)
    if args.command in (None, "serve"):
        from app.main import main as serve

        return serve()
    if args.command == "webhook-secret":
        return _webhook_secret(args.api_key)
    if args.command == "mirror":
        return _mirror(once=args.once, interval_s=args.interval, batch_size=args.batch_size)
    return _migrate()  # argparse allows no other command


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError("must be a number of seconds from 0 to 86400")
    return value


def _mirror(*, once: bool, interval_s: float, batch_size: int) -> int:
    from app.main import settings_or_exit

    settings = settings_or_exit()
    if settings is None:
        return 2
    from app.storage.command import mirror_command

    return asyncio.run(mirror_command(settings, once=once, interval_s=interval_s, batch_size=batch_size))


def _webhook_secret(api_key: str | None) -> int:
    from app.main import settings_or_exit

    settings = settings_or_exit()
    if settings is None:
        return 2
    from app.webhooks.command import webhook_secret_command

    return asyncio.run(webhook_secret_command(settings, api_key))


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
