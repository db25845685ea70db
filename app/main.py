"""Process entry point: settings, logging, then the server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.config import ConfigError, load_settings
from app.logs import configure_logging

if TYPE_CHECKING:
    from aiohttp import web


def main(configure: Callable[[web.Application], None] | None = None) -> int:
    """Run the service; return the process exit code (2 for a configuration error).

    ``configure`` may register extra routes or singleton work before the app starts.
    """
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    # Imported after configuration so a config error costs no import time.
    from app.server import serve

    return asyncio.run(serve(settings, configure))
