"""Reading request parameters the same way in every handler: the answer to a bad one is a JSON
error naming it."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from app.web.errors import json_error


class BadParameter(Exception):
    """A request parameter is missing or malformed; ``response`` is the JSON error to answer."""

    def __init__(self, response: web.Response) -> None:
        self.response = response
        super().__init__(response.text)


def path_uuid(request: web.Request, name: str = "id", *, what: str = "generation") -> uuid.UUID:
    """The path parameter ``name`` as a UUID; a malformed one is the same 404 as an unknown id."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise BadParameter(not_found(what)) from None


def not_found(what: str = "generation") -> web.Response:
    """The 404 for an id that names nothing the caller may see."""
    return json_error(404, "not_found", f"no {what} with this id")


def bounded_float(request: web.Request, name: str, *, low: float, high: float, default: float) -> float:
    """A query number clamped to ``[low, high]``; a malformed one counts as ``default``."""
    try:
        return max(low, min(high, float(request.query.get(name, str(default)))))
    except ValueError:
        return default


def nul_path(value: Any, path: str) -> str | None:
    """The dotted path of the first text in ``value`` (a JSON document) holding a NUL, or None.

    PostgreSQL's text and jsonb reject NUL, so such input is refused up front, naming the field.
    """
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return child
            if (found := nul_path(item, child)) is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (found := nul_path(item, f"{path}[{index}]")) is not None:
                return found
    return None


def nul_error(field: str) -> web.Response:
    """The 422 for a text holding a NUL character."""
    return json_error(422, "invalid_input", f"{field} must not contain a NUL character", field=field)


def reject_nul_in_query(request: web.Request) -> web.Response | None:
    """A 422 naming the first query parameter holding a NUL character, or None."""
    for name, value in request.query.items():
        if "\x00" in name or "\x00" in value:
            return nul_error(name.replace("\x00", "\\0"))
    return None
