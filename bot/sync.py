"""The coordinator: owns everyone's presence, merges every source into it, publishes transitions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from bot.presence import Presence, PresenceBook, PresenceUpdate, Transition
from bot.ringcentral.events import (
    ExtensionEventType,
    ExtensionListChange,
    MalformedPayload,
    parse_notification,
    parse_presence_record,
)
from bot.ringcentral.subscriber import SessionStart

log = logging.getLogger(__name__)

ACCOUNT_PRESENCE_PATH: Final = "/restapi/v1.0/account/~/presence"


class TransitionConsumer(Protocol):
    """Something that acts on availability changes (the Slack side). It must not block."""

    async def on_transition(self, transition: Transition) -> None: ...


class SnapshotListener(Protocol):
    """Told when a full snapshot has been applied, so it can reconcile against it."""

    async def on_snapshot(self, presences: Mapping[str, Presence]) -> None: ...


class PresenceSource(Protocol):
    def get_records(
        self, path: str, query: Mapping[str, Any] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]: ...


class DirectoryLike(Protocol):
    async def refresh(self) -> object: ...


class PresenceMemory(Protocol):
    """Durable last-known presence, so a restart knows who was on a call."""

    async def load_presence(self) -> Sequence[Presence]: ...
    async def save_presence(self, presences: Sequence[Presence]) -> None: ...
    async def forget_presence(self, extension_ids: Sequence[str]) -> None: ...


@dataclass(slots=True)
class SyncStats:
    notifications: int = 0
    malformed: int = 0
    transitions: int = 0
    snapshots: int = 0
    snapshot_records: int = 0
    directory_refreshes: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


class PresenceCoordinator:
    """The single owner of presence state; the subscriber and snapshots feed it, consumers read it.

    Snapshots race with live events: a record fetched before an event arrived but applied after it
    would move that extension backwards. So a snapshot record is skipped for any extension that
    had an event since the snapshot began.
    """

    def __init__(
        self,
        source: PresenceSource,
        directory: DirectoryLike,
        *,
        consumers: Iterable[TransitionConsumer] = (),
        snapshot_listeners: Iterable[SnapshotListener] = (),
        memory: PresenceMemory | None = None,
        snapshot_interval: float = 600.0,
        directory_interval: float = 3600.0,
        flush_interval: float = 2.0,
        book: PresenceBook | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._source = source
        self._directory = directory
        self._consumers = list(consumers)
        self._snapshot_listeners = list(snapshot_listeners)
        self._memory = memory
        self._snapshot_interval = snapshot_interval
        self._directory_interval = directory_interval
        self._flush_interval = flush_interval
        self.book = book or PresenceBook()
        self._clock = clock
        self._last_event_at: dict[str, datetime] = {}
        self._dirty: dict[str, Presence] = {}
        self._snapshot_wanted = asyncio.Event()
        self._directory_wanted = asyncio.Event()
        self._snapshot_lock = asyncio.Lock()
        self.snapshot_done = asyncio.Event()
        self.last_snapshot_at: datetime | None = None
        self.stats = SyncStats()

    def add_consumer(self, consumer: TransitionConsumer) -> None:
        self._consumers.append(consumer)

    def add_snapshot_listener(self, listener: SnapshotListener) -> None:
        self._snapshot_listeners.append(listener)

    # ----------------------------------------------------------------------------- start-up

    async def restore(self) -> int:
        """Load the last known presence from the store, without publishing transitions."""
        if self._memory is None:
            return 0
        presences = await self._memory.load_presence()
        self.book.restore(presences)
        return len(presences)

    # ----------------------------------------------------------------------------- feeding

    async def on_notification(self, envelope: dict[str, Any]) -> None:
        """A ServerNotification body from the subscriber."""
        self.stats.notifications += 1
        try:
            parsed = parse_notification(envelope, received_at=self._clock())
        except MalformedPayload as exc:
            self.stats.malformed += 1
            log.warning("skipped a RingCentral notification: %s", exc.reason)
            return
        if isinstance(parsed, ExtensionListChange):
            await self._on_extension_list(parsed)
            return
        self._last_event_at[parsed.extension_id] = parsed.received_at
        await self._apply(parsed)

    async def on_session_start(self, start: SessionStart) -> None:
        """After anything but a clean recovery the state may have gaps: re-read everyone."""
        if start is SessionStart.RECOVERED:
            return
        self.book.forget_sequences()
        self._snapshot_wanted.set()

    async def _on_extension_list(self, change: ExtensionListChange) -> None:
        for item in change.changes:
            if item.event_type is ExtensionEventType.DELETE:
                self.book.remove(item.extension_id)
                self._dirty.pop(item.extension_id, None)
                if self._memory is not None:
                    await self._memory.forget_presence([item.extension_id])
        self._directory_wanted.set()

    async def _apply(self, update: PresenceUpdate) -> Transition | None:
        transition = self.book.apply(update)
        current = self.book.get(update.extension_id)
        if current is not None:
            self._dirty[update.extension_id] = current
        if transition is not None:
            self.stats.transitions += 1
            await self._publish(transition)
        return transition

    async def _publish(self, transition: Transition) -> None:
        for consumer in self._consumers:
            try:
                await consumer.on_transition(transition)
            except Exception:
                # One consumer's bug must not cost the others their transition.
                log.exception("a presence consumer failed on a transition; continuing")

    # ----------------------------------------------------------------------------- snapshot

    async def snapshot(self) -> int:
        """Read every extension's presence over REST (paged, 1,000 a page) and merge it in."""
        async with self._snapshot_lock:
            started = self._clock()
            applied = 0
            async for page in self._source.get_records(ACCOUNT_PRESENCE_PATH, {"perPage": 1000}):
                received_at = self._clock()
                for record in page:
                    try:
                        update = parse_presence_record(record, received_at=received_at)
                    except MalformedPayload as exc:
                        self.stats.malformed += 1
                        log.warning("skipped a RingCentral presence record: %s", exc.reason)
                        continue
                    last_event = self._last_event_at.get(update.extension_id)
                    if last_event is not None and last_event >= started:
                        continue
                    await self._apply(update)
                    applied += 1
            self.stats.snapshots += 1
            self.stats.snapshot_records += applied
            self.last_snapshot_at = started
            self.snapshot_done.set()
            log.info("RingCentral presence snapshot: %d extensions", applied)
        await self._tell_snapshot_listeners()
        return applied

    async def _tell_snapshot_listeners(self) -> None:
        if not self._snapshot_listeners:
            return
        presences = {e: p for e in self.book.extension_ids() if (p := self.book.get(e))}
        for listener in self._snapshot_listeners:
            try:
                await listener.on_snapshot(presences)
            except Exception:
                log.exception("a snapshot listener failed; continuing")

    # ----------------------------------------------------------------------------- tasks

    async def run_snapshots(self) -> None:
        """Snapshot when asked (start, reconnects) and every `snapshot_interval` as a safety net."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._snapshot_wanted.wait(), self._snapshot_interval)
            self._snapshot_wanted.clear()
            await self.snapshot()

    async def run_directory(self) -> None:
        """Refresh the directory when the extension list changes and every `directory_interval`."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._directory_wanted.wait(), self._directory_interval)
            self._directory_wanted.clear()
            await self._directory.refresh()
            self.stats.directory_refreshes += 1

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
        await self._memory.save_presence(batch)

    def request_snapshot(self) -> None:
        self._snapshot_wanted.set()
