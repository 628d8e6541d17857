"""Availability changes for other systems: each recorded with an id, then offered to listeners."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Container, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from bot.api.people import ApiAvailability, PeopleView, rfc3339
from bot.presence import Availability
from bot.roster import PersonChange
from bot.store.events import StoredEvent

log = logging.getLogger(__name__)

EVENT_TYPE: Final = "availability.changed"
REPLAY_WINDOW: Final = timedelta(hours=1)
"""How far back a reconnecting stream client may catch up (Last-Event-ID)."""
MAX_KEPT_EVENTS: Final = 1_000_000
"""A bound on the log whatever the rate: an hour at ~280 changes a second."""
SUBSCRIBER_QUEUE: Final = 1_000
PENDING_LIMIT: Final = 100_000
"""Changes waiting to be recorded while the database is slow or away; beyond it, the oldest go."""
WRITE_BATCH: Final = 500
WRITE_LINGER: Final = 0.02
"""Seconds a write waits for more changes to join it: one transaction per change would cost
the database a commit per presence event at contact-centre rates."""


class EventLog(Protocol):
    async def append_events(
        self, team_id: str, rows: Sequence[tuple[datetime, str, dict[str, Any]]]
    ) -> list[int]: ...
    async def events_after(self, team_id: str, after_id: int, limit: int) -> list[StoredEvent]: ...
    async def prune_events(self, before: datetime, *, keep_at_most: int) -> int: ...
    async def last_recorded(self, team_id: str) -> dict[str, str]: ...


class EventListener(Protocol):
    def kick(self) -> None: ...


@dataclass(frozen=True, slots=True)
class AvailabilityEvent:
    """One change of what other systems see of a person: `data` is the person, plus `previous`."""

    id: int
    at: datetime
    user_id: str
    data: dict[str, Any]

    @property
    def availability(self) -> str:
        return str(self.data["availability"])

    def envelope(self) -> dict[str, Any]:
        """The body webhooks deliver and the stream sends."""
        return {"type": EVENT_TYPE, "timestamp": rfc3339(self.at), "data": self.data}

    @classmethod
    def stored(cls, row: StoredEvent) -> AvailabilityEvent:
        return cls(row.id, row.at, row.user_id, row.data)


class Subscription:
    """A live listener's queue; overflowing it closes it, and the client catches up by id."""

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[AvailabilityEvent | None] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, event: AvailabilityEvent | None) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    async def next(self, seconds: float) -> AvailabilityEvent | None:
        """The next event, or None after `seconds` of quiet (or once overflowed)."""
        if self.overflowed and self._queue.empty():
            return None
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self._queue.get(), seconds)
        return None


class AvailabilityFeed:
    """A peer under the coordinator: turns each person's change into what other systems see.

    A change that other systems cannot see (a hidden person staying hidden) makes no event.
    The hub is never held up by the database: a change is queued in memory and `run_writer`
    records queued changes in batches, then offers them (with their ids) to live subscribers,
    kicks the listeners (webhooks) and tells `on_recorded` the newest id (the replica bus).
    Recording happens within milliseconds, long before the coordinator persists the presence
    that caused it, so a crash in between loses no change: after a restart the remembered
    presence is the old one, and the first snapshot makes the same change again.

    On a follower neither `on_person_change` nor `run_writer` runs: `bot.replicas.tail`'s
    `EventTail` reads what the leader recorded and `offer`s it here.
    """

    def __init__(
        self,
        *,
        team_id: str,
        people: PeopleView,
        not_sharing: Container[str],
        log_store: EventLog,
        listeners: tuple[EventListener, ...] = (),
        on_recorded: Callable[[int], None] | None = None,
        linger: float = WRITE_LINGER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._team_id = team_id
        self._linger = linger
        self._people = people
        self._not_sharing = not_sharing
        self._log = log_store
        self._listeners = listeners
        self._on_recorded = on_recorded
        self._clock = clock
        self._subscribers: set[Subscription] = set()
        self._started = False
        self._pending: deque[tuple[datetime, str, dict[str, Any]]] = deque()
        self._queued = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self.recorded = 0
        self.dropped = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def on_person_change(self, change: PersonChange) -> None:
        state = self._people.state(change.user_id, self._not_sharing)
        previous = self._shown(change.user_id, change.old)
        if previous is state.availability:
            return
        if previous is ApiAvailability.UNKNOWN and not self._started:
            # Learning everyone's presence at start is not news: the people resource has it.
            return
        at = datetime.fromtimestamp(self._clock(), UTC)
        data = {**state.as_json(), "previous": previous.value}
        if len(self._pending) >= PENDING_LIMIT:
            self._pending.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("availability changes are not being recorded; %d dropped", self.dropped)
        self._pending.append((at, change.user_id, data))
        self._drained.clear()
        self._queued.set()

    async def run_writer(self) -> None:
        """Record queued changes in batches and tell who listens; owned by the supervisor."""
        while True:
            if not self._pending:  # after a failed batch (restarted), go on at once
                await self._queued.wait()
            if len(self._pending) < WRITE_BATCH:
                await asyncio.sleep(self._linger)
            self._queued.clear()
            while self._pending:
                batch = [self._pending[i] for i in range(min(WRITE_BATCH, len(self._pending)))]
                ids = await self._log.append_events(self._team_id, batch)
                for _ in batch:
                    self._pending.popleft()
                self.recorded += len(ids)
                for event_id, (at, user_id, data) in zip(ids, batch, strict=True):
                    self.offer(AvailabilityEvent(event_id, at, user_id, data))
                for listener in self._listeners:
                    listener.kick()
                if self._on_recorded is not None and ids:
                    self._on_recorded(max(ids))
            self._drained.set()

    async def flush(self) -> None:
        """Wait until every queued change is recorded (tests, and a clean stop)."""
        await self._drained.wait()

    async def on_resync(self) -> None:
        """A snapshot was merged: from now on, someone new to the bot is news.

        The first one also squares the log with the present. The presence a restart (or a new
        leader) starts from is saved every few seconds, the log within milliseconds: a call
        recorded just before a crash and ended while no bot ran would otherwise stay "on a
        call" for other systems until that person's next change."""
        if self._started:
            return
        self._started = True
        try:
            recorded = await self._log.last_recorded(self._team_id)
        except Exception:
            log.exception("could not compare the availability log with the present")
            return
        for _at, user_id, data in self._pending:  # taken in meanwhile, still to be recorded
            recorded[user_id] = str(data["availability"])
        for user_id, shown in recorded.items():
            state = self._people.state(user_id, self._not_sharing)
            if state.availability.value == shown or state.availability is ApiAvailability.UNKNOWN:
                continue
            at = datetime.fromtimestamp(self._clock(), UTC)
            self._pending.append((at, user_id, {**state.as_json(), "previous": shown}))
        if self._pending:
            self._drained.clear()
            self._queued.set()

    def _shown(self, user_id: str, availability: Availability | None) -> ApiAvailability:
        if availability is None:
            return ApiAvailability.UNKNOWN
        if availability is Availability.HIDDEN or user_id in self._not_sharing:
            return ApiAvailability.HIDDEN
        return ApiAvailability(availability.value)

    def offer(self, event: AvailabilityEvent) -> None:
        """Hand a recorded event to every live subscriber (on a follower, the tail does)."""
        for subscription in self._subscribers:
            subscription.offer(event)

    def subscribe(self, maxsize: int = SUBSCRIBER_QUEUE) -> Subscription:
        subscription = Subscription(maxsize)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    async def since(self, after_id: int, limit: int = 1000) -> list[AvailabilityEvent]:
        """Recorded events after `after_id` (at most an hour old), oldest first."""
        rows = await self._log.events_after(self._team_id, after_id, limit)
        return [AvailabilityEvent.stored(row) for row in rows]

    async def replay(self, after_id: int) -> AsyncIterator[AvailabilityEvent]:
        """Every recorded event after `after_id`, in pages."""
        while True:
            page = await self.since(after_id)
            for event in page:
                yield event
            if len(page) < 1000:
                return
            after_id = page[-1].id

    async def run_pruner(self, interval: float = 60.0) -> None:
        """Keep the log to REPLAY_WINDOW and MAX_KEPT_EVENTS; owned by the supervisor."""
        while True:
            cutoff = datetime.fromtimestamp(self._clock(), UTC) - REPLAY_WINDOW
            removed = await self._log.prune_events(cutoff, keep_at_most=MAX_KEPT_EVENTS)
            if removed:
                log.debug("pruned %d availability events", removed)
            await asyncio.sleep(interval)
