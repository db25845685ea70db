"""What we need to know of a raw update before it is parsed: its id and its chat."""

from __future__ import annotations

from typing import Any

# Update kinds that carry a message (whose chat is the update's chat).
_MESSAGE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post", "business_message")
# Kinds whose chat is the sender's (a private conversation with the bot).
_FROM_KINDS = ("inline_query", "chosen_inline_result", "shipping_query", "pre_checkout_query")

ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]


class NotAnUpdate(ValueError):
    """The body is not a Telegram update (no integer ``update_id``)."""


def update_id_of(update: Any) -> int:
    """The update's id; raises NotAnUpdate."""
    if not isinstance(update, dict):
        raise NotAnUpdate("an update is a JSON object")
    value = update.get("update_id")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise NotAnUpdate("an update has a non-negative integer update_id")
    return value


def chat_of(update: dict[str, Any]) -> int | None:
    """The chat an update belongs to (its updates are handled in order), or None."""
    for kind in _MESSAGE_KINDS:
        message = update.get(kind)
        if isinstance(message, dict):
            return _id(message.get("chat"))
    query = update.get("callback_query")
    if isinstance(query, dict):
        message = query.get("message")
        if isinstance(message, dict):
            return _id(message.get("chat"))
        return _id(query.get("from"))
    for kind in _FROM_KINDS:
        event = update.get(kind)
        if isinstance(event, dict):
            return _id(event.get("from"))
    for kind in ("my_chat_member", "chat_member", "chat_join_request"):
        event = update.get(kind)
        if isinstance(event, dict):
            return _id(event.get("chat"))
    return None


def _id(entity: Any) -> int | None:
    if isinstance(entity, dict) and isinstance(entity.get("id"), int):
        return int(entity["id"])
    return None
