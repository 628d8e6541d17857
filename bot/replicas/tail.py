"""A follower's event stream: what the leader recorded, read from the store by id, offered here."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final, Protocol

from bot.api.events import AvailabilityEvent
from bot.replicas.bus import Envelope, Subscriber
from bot.replicas.mirror import EVENTS_TOPIC

log = logging.getLogger(__name__)

PAGE: Final = 1000
RETRY_FIRST: Final = 0.5
RETRY_MAX: Final = 10.0


class Feed(Protocol):
    """`bot.api.events.AvailabilityFeed`, as a follower uses it."""

    async def since(self, after_id: int, limit: int = PAGE) -> list[AvailabilityEvent]: ...
    def offer(self, event: AvailabilityEvent) -> None: ...


class LatestEvent(Protocol):
    async def latest_event_id(self, team_id: str) -> int: ...


class EventTail:
    """Offers this replica's stream clients every event the leader records, with its id.

    The leader announces "recorded up to id N" on the bus after each batch; the events
    themselves are read from the store, so they are the very rows (ids, times, bodies) the
    leader's clients get, and a lost NOTIFY costs only a delay: the next notice, or the bus's
    reconnect, reads everything after the last id offered. The tail starts at the newest id
    recorded when it first runs: older events are history, which clients replay by
    Last-Event-ID.
    """

    def __init__(
        self,
        *,
        team_id: str,
        feed: Feed,
        store: LatestEvent,
        bus: Subscriber,
        page: int = PAGE,
    ) -> None:
        self._team_id = team_id
        self._feed = feed
        self._store = store
        self._page = page
        self._after: int | None = None
        self._announced = 0
        self._wanted = asyncio.Event()
        self._wanted.set()
        self.offered = 0
        bus.subscribe(EVENTS_TOPIC, self._on_recorded)
        bus.on_connected(self._on_connected)

    @property
    def last_id(self) -> int | None:
        """The newest id offered (or the start), None before the tail first ran."""
        return self._after

    async def _on_recorded(self, message: Any, _envelope: Envelope) -> None:
        if not isinstance(message, int) or isinstance(message, bool):
            log.warning("dropped an events notice from the leader: not an id")
            return
        self._announced = max(self._announced, message)
        if self._after is None or message > self._after:
            self._wanted.set()

    async def _on_connected(self) -> None:
        self._wanted.set()

    async def run(self) -> None:
        """Read and offer what was recorded whenever told; owned by the supervisor."""
        delay = RETRY_FIRST
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self._catch_up()
            except Exception as exc:  # the store is away: the next attempt starts from the same id
                log.warning("follower could not read availability events (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                self._wanted.set()
                continue
            delay = RETRY_FIRST

    async def _catch_up(self) -> None:
        if self._after is None:
            self._after = await self._store.latest_event_id(self._team_id)
        while True:
            page = await self._feed.since(self._after, self._page)
            for event in page:
                self._feed.offer(event)
                self._after = event.id
            self.offered += len(page)
            if len(page) < self._page:
                return
