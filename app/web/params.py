"""Reading request parameters the same way in every handler: the answer to a bad one is a JSON
error naming it."""

from __future__ import annotations

import uuid

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
