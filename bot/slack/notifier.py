"""Notify-when-free: fires each persisted watch once its target has stayed available."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.presence import Availability
from bot.roster import PersonChange, RosterView
from bot.slack import blocks
from bot.store import Store

log = logging.getLogger(__name__)


class Outbox(Protocol):
    def kick(self) -> None:
        """A DM was queued."""
        ...


@dataclass(slots=True)
class _BusyStretch:
    """The notifier's own memory of a target's last busy stretch, for the DM's wording."""

    was: Availability
    """The last busy class before they became free."""
    since: datetime
    """When the stretch began."""


class FreeNotifier:
    """A peer under the coordinator: a target free for `free_debounce` seconds fires its watches.

    The debounce keeps back-to-back calls from firing: a new call inside it cancels the pending
    notice. Who is watched at all is kept in memory (read at start, told by each new watch,
    read again at each expiry pass), so a change of someone nobody watches costs no read.
    Whether the target is free is read from the roster when the notice is due, never
    kept here. Watches live in the store, so a restart loses none. Firing queues the DM in the
    store's outbox and marks the watch sending in one transaction that only one replica wins;
    the outbox marks it fired once Slack has accepted the DM, retrying until then.
    """

    def __init__(
        self,
        *,
        store: Store,
        team_id: str,
        roster: RosterView,
        outbox: Outbox,
        free_debounce: float = 20.0,
        dm_deadline: float = 1800.0,
        expiry_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._team_id = team_id
        self._roster = roster
        self._outbox = outbox
        self._debounce = free_debounce
        # "Free now" an hour late is wrong, not late: past this the outbox gives up.
        self._dm_deadline = timedelta(seconds=dm_deadline)
        self._expiry_interval = expiry_interval
        self._clock = clock
        self._busy: dict[str, _BusyStretch] = {}
        self._due: dict[str, float] = {}
        self._watched: set[str] | None = None
        self._added_while_reading: set[str] = set()
        """Targets with an active watch; None until read (then every target is looked up)."""
        self._wake = asyncio.Event()

    async def on_person_change(self, change: PersonChange) -> None:
        user_id = change.user_id
        if change.new is Availability.AVAILABLE:
            if change.old is not Availability.AVAILABLE and self._is_watched(user_id):
                self._due[user_id] = change.since.timestamp() + self._debounce
                self._wake.set()
            return
        self._due.pop(user_id, None)
        if change.new is None:
            self._busy.pop(user_id, None)
            return
        stretch = self._busy.get(user_id)
        if stretch is None or change.old in (None, Availability.AVAILABLE):
            self._busy[user_id] = _BusyStretch(change.new, change.since)
        else:
            stretch.was = change.new

    async def on_resync(self) -> None:
        """Nothing to reconcile: due notices re-read the roster when they fire."""

    def _is_watched(self, target_id: str) -> bool:
        return self._watched is None or target_id in self._watched

    def watch_added(self, target_id: str) -> None:
        """A watch on `target_id` was stored: look again (they may already be due)."""
        if self._watched is not None:
            self._watched.add(target_id)
        self._added_while_reading.add(target_id)
        self._wake.set()

    async def run(self) -> None:
        """Fire due watches; expire old ones. Owned by the supervisor."""
        next_expiry = self._clock()
        while True:
            now = self._clock()
            if now >= next_expiry:
                await self._expire(now)
                # Also catches watches stored by anyone who could not tell this notifier.
                self._added_while_reading.clear()
                watched = await self._store.watched_targets(self._team_id)
                self._watched = watched | self._added_while_reading
                next_expiry = now + self._expiry_interval
            for user_id, due in list(self._due.items()):
                # _fire awaits, and availability may change meanwhile: re-check each entry.
                if due <= now and self._due.get(user_id) == due:
                    del self._due[user_id]
                    await self._fire(user_id)
            wait = min([next_expiry, *self._due.values()]) - self._clock()
            self._wake.clear()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def _fire(self, target_id: str) -> None:
        stretch = self._busy.pop(target_id, None)
        if not self._is_watched(target_id):
            return
        watches = await self._store.watches_on(self._team_id, target_id)
        if not watches and self._watched is not None:
            self._watched.discard(target_id)
        for watch in watches:
            # Free now, as the roster says at this moment (the watch read above awaited).
            presence = self._roster.presence_of(target_id)
            if presence is None or presence.availability is not Availability.AVAILABLE:
                return
            busy_since = stretch.since if stretch is not None else watch.busy_since
            was = stretch.was if stretch is not None else None
            text, message = blocks.free_dm(
                target_id, was=was, busy_since=busy_since, now=presence.availability_since
            )
            now = datetime.fromtimestamp(self._clock(), UTC)
            queued = await self._store.fire_watch(
                watch.id,
                text=text,
                blocks=message,
                now=now,
                give_up_at=now + self._dm_deadline,
            )
            if queued:
                self._outbox.kick()

    async def _expire(self, now: float) -> None:
        expired = await self._store.expire_watches(datetime.fromtimestamp(now, UTC))
        if expired:
            log.info("%d watches expired unanswered", len(expired))
