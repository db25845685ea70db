"""Generation events for live followers (WebSocket, and any channel that wants them pushed): one
LISTEN on ``generation_events`` per instance, each changed generation read once, and its envelope
fanned out to the followers of its owner. Events reach followers on every instance, whichever made
the change, because every instance LISTENs.

A follower's queue is bounded: one that does not keep up loses the oldest events and is told to
catch up by reading (its ``overflowed`` flag), never slowing the others down.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from app.db.generations import EVENTS_CHANNEL
from app.db.notifications import Notifications
from app.generations.model import Generation
from app.generations.service import GenerationService
from app.logs import get_logger
from app.redaction import describe_error

log = get_logger(__name__)

_QUEUE = 256
K = TypeVar("K")


@dataclass(eq=False)
class Follower:
    """One live follower: an owner's generations (all, or one)."""

    owner: str
    generation_id: uuid.UUID | None
    queue: asyncio.Queue[Generation] = field(default_factory=lambda: asyncio.Queue(_QUEUE))
    overflowed: bool = False

    def offer(self, generation: Generation) -> None:
        """Queue a change, dropping the oldest when the follower is behind."""
        if self.queue.full():
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(generation)


class EventHub:
    """Fans generation changes out to followers; started with the service, one per instance."""

    def __init__(self, notifications: Notifications, generations: GenerationService) -> None:
        self._notifications = notifications
        self._generations = generations
        self._by_owner: dict[str, set[Follower]] = {}  # followers of all of an owner's generations
        self._by_generation: dict[uuid.UUID, set[Follower]] = {}  # followers of one generation

    def follow(self, owner: str, generation_id: uuid.UUID | None = None) -> Follower:
        """Start following ``owner``'s generations (or one of them)."""
        follower = Follower(owner, generation_id)
        if generation_id is None:
            self._by_owner.setdefault(owner, set()).add(follower)
        else:
            self._by_generation.setdefault(generation_id, set()).add(follower)
        return follower

    def unfollow(self, follower: Follower) -> None:
        """Stop following."""
        if follower.generation_id is None:
            _discard(self._by_owner, follower.owner, follower)
        else:
            _discard(self._by_generation, follower.generation_id, follower)

    @property
    def followers(self) -> int:
        """How many followers are connected to this instance."""
        return sum(len(f) for f in self._by_owner.values()) + sum(
            len(f) for f in self._by_generation.values()
        )

    async def run(self) -> None:
        """Forever: read each burst of changed generations in one query and hand them out."""
        events = self._notifications.subscribe(EVENTS_CHANNEL)
        try:
            while True:
                payload = await events.get()
                ids = {_generation_id(payload)}
                while not events.empty():  # a burst: read each generation once, all in one query
                    ids.add(_generation_id(events.get_nowait()))
                wanted = [
                    gid for gid in ids if gid is not None and (self._by_owner or gid in self._by_generation)
                ]
                if wanted:
                    await self._deliver(wanted)
        finally:
            self._notifications.unsubscribe(EVENTS_CHANNEL, events)

    async def _deliver(self, generation_ids: list[uuid.UUID]) -> None:
        try:
            generations = await self._generations.get_many(generation_ids)
        except Exception as exc:  # the database went away: followers catch up when they reconnect
            log.warning("events.read_failed", ids=len(generation_ids), error=describe_error(exc))
            return
        for generation in generations:
            for follower in (
                *self._by_generation.get(generation.id, ()),
                *self._by_owner.get(generation.owner, ()),
            ):
                if follower.owner == generation.owner:
                    follower.offer(generation)


def _discard(index: dict[K, set[Follower]], key: K, follower: Follower) -> None:
    followers = index.get(key)
    if followers is not None:
        followers.discard(follower)
        if not followers:
            del index[key]


def _generation_id(payload: str) -> uuid.UUID | None:
    try:
        data: Any = orjson.loads(payload)
        return uuid.UUID(str(data["id"]))
    except (ValueError, KeyError, TypeError):
        return None
