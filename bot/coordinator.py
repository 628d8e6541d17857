"""The hub: the one writer of presence and links, publishing each person's changes to its peers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from bot.presence import Presence, PresenceUpdate
from bot.roster import PersonChange, Roster

log = logging.getLogger(__name__)

SAFETY_NET_PACE: Final = 15.0
"""Seconds between the pages of a periodic snapshot: 4 of the Heavy group's 10 a minute."""
SNAPSHOT_STEP: Final = 200
"""Snapshot records merged between two turns of the loop."""
FLUSH_SLICE: Final = 250
"""Presences saved in one transaction."""


class PersonConsumer(Protocol):
    """A peer under the hub (status writer, notifier, Home boards, …); it owns its own state.

    Both calls come from the presence path: a consumer must not wait on Slack or anything slow
    in them, only take note and queue its work.
    """

    async def on_person_change(self, change: PersonChange) -> None: ...

    async def on_resync(self) -> None:
        """A full snapshot was merged: reconcile anything derived from presence."""
        ...


class SnapshotSource(Protocol):
    def pages(self) -> AsyncIterator[Sequence[PresenceUpdate]]: ...


class LinkRecord(Protocol):
    @property
    def user_id(self) -> str: ...
    @property
    def extension_id(self) -> str: ...


class LinkStore(Protocol):
    async def links(self, team_id: str) -> Sequence[LinkRecord]: ...


class PresenceMemory(Protocol):
    """Durable last-known presence, so a restart knows who was on a call."""

    async def load_presence(self) -> Sequence[Presence]: ...
    async def save_presence(self, presences: Sequence[Presence]) -> None: ...
    async def forget_presence(self, extension_ids: Sequence[str]) -> None: ...


class PresenceMirror(Protocol):
    """Where the leader's merged presence goes for the other replicas (see bot/replicas).

    Called on the presence path: it must only take note and queue, never wait.
    """

    def presence_changed(self, presence: Presence, previous: Presence | None) -> None: ...
    def extensions_removed(self, extension_ids: Sequence[str]) -> None: ...
    def links_changed(self) -> None: ...


@dataclass(slots=True)
class CoordinatorStats:
    transitions: int = 0
    """Availability changes of any extension, linked or not."""
    published: int = 0
    """Changes told to the consumers (each counted once, however many consumers)."""
    snapshots: int = 0
    snapshot_records: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


class Coordinator:
    """Merges every source of presence into the roster and tells every consumer what changed.

    Snapshots race with live events: a record fetched before an event arrived but applied after
    it would move that extension backwards. So a snapshot record is skipped for any extension
    that had an event since the snapshot began. Consumers are told in the order they were
    given, one change at a time; one consumer's failure costs the others nothing.
    """

    def __init__(
        self,
        *,
        team_id: str,
        roster: Roster,
        snapshots: SnapshotSource,
        links: LinkStore,
        consumers: Sequence[PersonConsumer] = (),
        memory: PresenceMemory | None = None,
        mirror: PresenceMirror | None = None,
        snapshot_interval: float = 600.0,
        flush_interval: float = 2.0,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._team_id = team_id
        self._roster = roster
        self._snapshots = snapshots
        self._links = links
        self._consumers = tuple(consumers)
        self._memory = memory
        self._mirror = mirror
        self._snapshot_interval = snapshot_interval
        self._flush_interval = flush_interval
        self._clock = clock
        self._last_event_at: dict[str, datetime] = {}
        self._dirty: dict[str, Presence] = {}
        self._snapshot_wanted = asyncio.Event()
        self._snapshot_lock = asyncio.Lock()
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.first_snapshot = asyncio.Event()
        self.stats = CoordinatorStats()

    # ----------------------------------------------------------------------------- start-up

    async def restore(self) -> int:
        """Load the last known presence from the store, without publishing anything."""
        if self._memory is None:
            return 0
        return self._roster.restore(await self._memory.load_presence())

    async def reload_links(self) -> None:
        """Read the links again from the store (after a mapping refresh or a link command)."""
        links = {link.user_id: link.extension_id for link in await self._links.links(self._team_id)}
        changes = self._roster.set_links(links, at=self._clock())
        if self._mirror is not None:
            self._mirror.links_changed()
        for change in changes:
            await self._publish(change)

    # ----------------------------------------------------------------------------- inputs

    async def on_presence(self, update: PresenceUpdate) -> None:
        """A live event (a snapshot record goes through `snapshot`)."""
        self._last_event_at[update.extension_id] = update.received_at
        await self._apply(update)

    async def on_extensions_removed(self, extension_ids: Sequence[str]) -> None:
        for extension_id in extension_ids:
            self._dirty.pop(extension_id, None)
            change = self._roster.remove(extension_id, at=self._clock())
            if change is not None:
                await self._publish(change)
        if self._mirror is not None:
            self._mirror.extensions_removed(extension_ids)
        if self._memory is not None:
            await self._memory.forget_presence(list(extension_ids))

    def resync(self) -> None:
        """Events may have been missed: take the next of each whatever its sequence; re-read all."""
        self._roster.forget_sequences()
        self._snapshot_wanted.set()

    async def _apply(self, update: PresenceUpdate) -> None:
        mirror = self._mirror
        previous = self._roster.presence(update.extension_id) if mirror is not None else None
        moved, change = self._roster.apply(update)
        current = self._roster.presence(update.extension_id)
        if current is not None:
            self._dirty[update.extension_id] = current
            if mirror is not None and current is not previous:
                mirror.presence_changed(current, previous)
        if moved:
            self.stats.transitions += 1
        if change is not None:
            await self._publish(change)

    async def _publish(self, change: PersonChange) -> None:
        self.stats.published += 1
        with self._telling():
            for consumer in self._consumers:
                try:
                    await consumer.on_person_change(change)
                except Exception:
                    log.exception("a presence consumer failed on a change; continuing")

    @contextlib.contextmanager
    def _telling(self) -> Iterator[None]:
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    @property
    def idle(self) -> bool:
        """Nothing is being told to the consumers right now."""
        return self._busy == 0

    async def wait_idle(self) -> None:
        await self._idle.wait()

    # ----------------------------------------------------------------------------- snapshot

    async def snapshot(self, *, pace: float = 0.0) -> int:
        """Merge everyone's presence as RingCentral reports it now; returns how many applied.

        `pace` seconds pass between pages (the next is asked for only then)."""
        async with self._snapshot_lock:
            started = self._clock()
            applied = 0
            first = True
            async for page in self._snapshots.pages():
                if pace > 0 and not first:
                    await asyncio.sleep(pace)
                first = False
                for update in page:
                    last_event = self._last_event_at.get(update.extension_id)
                    if last_event is not None and last_event >= started:
                        continue
                    await self._apply(update)
                    applied += 1
                    if applied % SNAPSHOT_STEP == 0:
                        await asyncio.sleep(0)  # live events go on while a big page merges
            self.stats.snapshots += 1
            self.stats.snapshot_records += applied
            self.first_snapshot.set()
            log.info("RingCentral presence snapshot: %d extensions", applied)
        with self._telling():
            for consumer in self._consumers:
                try:
                    await consumer.on_resync()
                except Exception:
                    log.exception("a presence consumer failed to resync; continuing")
        return applied

    # ----------------------------------------------------------------------------- tasks

    async def run_snapshots(self) -> None:
        """Snapshot when asked (start, reconnects) and every `snapshot_interval` as a safety net.

        Pages of presence are RingCentral's Heavy group, 10 a minute, and a company beyond
        10,000 extensions needs more than that for one snapshot. The safety net is in no hurry:
        it asks for at most one page every SAFETY_NET_PACE seconds, so that a restart (or a
        reconnect) just after it still finds most of the minute's requests left.
        """
        while True:
            asked = True
            try:
                await asyncio.wait_for(self._snapshot_wanted.wait(), self._snapshot_interval)
            except TimeoutError:
                asked = False
            self._snapshot_wanted.clear()
            await self.snapshot(pace=0.0 if asked else SAFETY_NET_PACE)

    async def run_persistence(self) -> None:
        """Write changed presences to the store in batches, one write per interval."""
        if self._memory is None:
            return
        try:
            while True:
                await asyncio.sleep(self._flush_interval)
                await self.flush()
        finally:
            await self.flush()

    async def flush(self) -> None:
        if self._memory is None or not self._dirty:
            return
        batch, self._dirty = list(self._dirty.values()), {}
        # In slices: building every row of a busy company's 2 s at once holds the loop for tens
        # of milliseconds, and live events would wait behind it.
        for first in range(0, len(batch), FLUSH_SLICE):
            await self._memory.save_presence(batch[first : first + FLUSH_SLICE])
