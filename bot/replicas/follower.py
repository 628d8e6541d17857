"""A follower's roster: the leader's presence from the bus, rebuilt from the store on reconnect."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from bot.coordinator import LinkRecord, PersonConsumer
from bot.presence import Presence
from bot.replicas.bus import Envelope, Subscriber
from bot.replicas.mirror import LINKS_TOPIC, PRESENCE_TOPIC, REMOVED_TOPIC, presence_from_wire
from bot.roster import PersonChange, Roster

log = logging.getLogger(__name__)

SETTLE: Final = 5.0
"""Seconds after a rebuild to rebuild once more: the leader writes presence to the store every
2 s, so a change published while this replica was not listening may reach the store only after
the first rebuild has read it."""
RETRY_FIRST: Final = 0.5
RETRY_MAX: Final = 10.0


class FollowerStore(Protocol):
    async def load_presence(self) -> Sequence[Presence]: ...
    async def links(self, team_id: str) -> Sequence[LinkRecord]: ...


@dataclass(slots=True)
class FollowerStats:
    adopted: int = 0
    removed: int = 0
    rebuilds: int = 0
    link_reloads: int = 0
    malformed: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


class FollowerPresence:
    """Keeps a follower's `Roster` as the leader's, and tells this replica's consumers.

    The leader is the authority: what it sends is adopted whatever RingCentral's sequence
    numbers say (the leader applied them already). NOTIFYs are lost while this replica is not
    listening, so at start and after every bus (re)connect the roster is rebuilt from the store,
    and once more SETTLE seconds later. A rebuild merges rather than replaces, because the store
    lags the bus by the leader's flush interval:
    - an extension the bus spoke of since the rebuild began keeps what the bus said;
    - otherwise the store's presence is taken when it is newer (`updated_at`, the leader's clock);
    - an extension missing from the store is removed, unless its presence is newer than the
      newest one stored (the leader has not written it yet).
    Consumers (the gate, …) are told each change, and `on_resync` after each rebuild, as the
    coordinator tells the leader's.
    """

    def __init__(
        self,
        *,
        team_id: str,
        roster: Roster,
        store: FollowerStore,
        bus: Subscriber,
        consumers: Sequence[PersonConsumer] = (),
        settle: float = SETTLE,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._team_id = team_id
        self._roster = roster
        self._store = store
        self._consumers = tuple(consumers)
        self._settle = settle
        self._clock = clock
        self._touched: set[str] | None = None
        self._wanted = asyncio.Event()
        self._full_wanted = True
        self._links_wanted = False
        self._wanted.set()
        self.rebuilt = asyncio.Event()
        """Set once the first rebuild is done: the view can serve."""
        self.stats = FollowerStats()
        bus.subscribe(PRESENCE_TOPIC, self._on_presence)
        bus.subscribe(REMOVED_TOPIC, self._on_removed)
        bus.subscribe(LINKS_TOPIC, self._on_links)
        bus.on_connected(self._on_connected)

    # ----------------------------------------------------------------------------- the bus

    async def _on_presence(self, message: Any, _envelope: Envelope) -> None:
        try:
            presence = presence_from_wire(message)
        except ValueError as exc:
            self.stats.malformed += 1
            log.warning("dropped a presence from the leader: %s", exc)
            return
        if self._touched is not None:
            self._touched.add(presence.extension_id)
        self.stats.adopted += 1
        change = self._roster.adopt(presence)
        if change is not None:
            await self._tell(change)

    async def _on_removed(self, message: Any, _envelope: Envelope) -> None:
        if not isinstance(message, list) or not all(isinstance(i, str) for i in message):
            self.stats.malformed += 1
            log.warning("dropped a removal from the leader: not a list of extension ids")
            return
        at = self._clock()
        for extension_id in message:
            if self._touched is not None:
                self._touched.add(extension_id)
            self.stats.removed += 1
            change = self._roster.remove(extension_id, at=at)
            if change is not None:
                await self._tell(change)

    async def _on_links(self, _message: Any, _envelope: Envelope) -> None:
        self._links_wanted = True
        self._wanted.set()

    async def _on_connected(self) -> None:
        self._full_wanted = True
        self._wanted.set()

    # ----------------------------------------------------------------------------- the task

    async def run(self) -> None:
        """Rebuild and reload links when asked, retrying with backoff; owned by the supervisor."""
        settle_at: float | None = None
        delay = RETRY_FIRST
        while True:
            settling = False
            if settle_at is None:
                await self._wanted.wait()
            else:
                try:
                    await asyncio.wait_for(self._wanted.wait(), settle_at - time.monotonic())
                except TimeoutError:
                    self._full_wanted = settling = True
            self._wanted.clear()
            full, links = self._full_wanted, self._links_wanted
            self._full_wanted = self._links_wanted = False
            try:
                if full:
                    await self.rebuild()
                elif links:
                    await self.reload_links()
            except Exception as exc:  # the store is away: keep serving what we have, retry
                log.warning("follower could not read the store (%s); retrying", exc)
                self._full_wanted |= full
                self._links_wanted |= links
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                self._wanted.set()
                continue
            delay = RETRY_FIRST
            if full:
                # A rebuild the settle timer asked for does not ask for another.
                settle_at = None if settling else time.monotonic() + self._settle

    async def rebuild(self) -> None:
        """Merge the store's presence and links into the roster (see the class's rules)."""
        self._touched = set()
        try:
            stored = await self._store.load_presence()
            links = await self._store.links(self._team_id)
            touched = self._touched
        finally:
            self._touched = None
        changes = self._merge(stored, touched)
        changes += self._roster.set_links(
            {link.user_id: link.extension_id for link in links}, at=self._clock()
        )
        self.stats.rebuilds += 1
        for change in changes:
            await self._tell(change)
        self.rebuilt.set()
        for consumer in self._consumers:
            try:
                await consumer.on_resync()
            except Exception:
                log.exception("a follower consumer failed to resync; continuing")

    async def reload_links(self) -> None:
        links = await self._store.links(self._team_id)
        self.stats.link_reloads += 1
        for change in self._roster.set_links(
            {link.user_id: link.extension_id for link in links}, at=self._clock()
        ):
            await self._tell(change)

    def _merge(self, stored: Sequence[Presence], touched: set[str]) -> list[PersonChange]:
        """Changes the roster makes, all at once: no bus message lands in the middle."""
        changes: list[PersonChange] = []
        newest = max((p.updated_at for p in stored), default=None)
        kept: set[str] = set()
        for presence in stored:
            kept.add(presence.extension_id)
            if presence.extension_id in touched:
                continue
            local = self._roster.presence(presence.extension_id)
            if local is None or presence.updated_at > local.updated_at:
                change = self._roster.adopt(presence)
                if change is not None:
                    changes.append(change)
        at = self._clock()
        for local in self._roster.presences():
            extension_id = local.extension_id
            if extension_id in kept or extension_id in touched:
                continue
            if newest is not None and local.updated_at > newest:
                continue
            change = self._roster.remove(extension_id, at=at)
            if change is not None:
                changes.append(change)
        return changes

    async def _tell(self, change: PersonChange) -> None:
        for consumer in self._consumers:
            try:
                await consumer.on_person_change(change)
            except Exception:
                log.exception("a follower consumer failed on a change; continuing")
