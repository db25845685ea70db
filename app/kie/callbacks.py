"""The public name of the KIE callback parser (``from app.kie.callbacks import extract_task_id,
parse_callback``); the parser itself is :mod:`app.kie.parse`."""

from app.kie.parse import ParsedCallback, extract_task_id, parse_callback

__all__ = ["ParsedCallback", "extract_task_id", "parse_callback"]
