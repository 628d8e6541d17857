"""RingCentral's notifications and presence snapshots, turned into domain updates for the hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from bot.presence import PresenceUpdate
from bot.ringcentral.events import (
    ExtensionEventType,
    ExtensionListChange,
    InternalNumber,
    MalformedPayload,
    parse_notification,
    parse_presence_record,
)
from bot.ringcentral.subscriber import SessionStart

log = logging.getLogger(__name__)

ACCOUNT_PRESENCE_PATH: Final = "/restapi/v1.0/account/~/presence"


class PresenceSink(Protocol):
    """Where domain updates go (the coordinator); it knows nothing of RingCentral's wire."""

    async def on_presence(self, update: PresenceUpdate) -> None: ...
    async def on_extensions_removed(self, extension_ids: Sequence[str]) -> None: ...
    def resync(self) -> None: ...


class DirectoryLike(Protocol):
    async def refresh(self) -> object: ...


class PagedSource(Protocol):
    def get_records(
        self, path: str, query: Mapping[str, Any] | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]: ...


@dataclass(slots=True)
class FeedStats:
    notifications: int = 0
    malformed: int = 0
    directory_refreshes: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


class PresenceFeed:
    """The subscriber's sink: parses each notification and hands the sink what it means.

    A presence event becomes a `PresenceUpdate`; an extension-list change refreshes the
    directory (and a deleted extension is forgotten); a session that did not recover cleanly
    asks for a resync, because notifications may have been missed.
    """

    def __init__(
        self,
        sink: PresenceSink,
        directory: DirectoryLike,
        *,
        directory_interval: float = 3600.0,
        clock: Callable[[], datetime] = _now,
        internal_number: InternalNumber | None = None,
    ) -> None:
        self._sink = sink
        self._internal_number = internal_number
        self._directory = directory
        self._directory_interval = directory_interval
        self._clock = clock
        self._directory_wanted = asyncio.Event()
        self.stats = FeedStats()

    async def on_notification(self, envelope: dict[str, Any]) -> None:
        self.stats.notifications += 1
        try:
            parsed = parse_notification(
                envelope, received_at=self._clock(), internal_number=self._internal_number
            )
        except MalformedPayload as exc:
            self.stats.malformed += 1
            log.warning("skipped a RingCentral notification: %s", exc.reason)
            return
        if isinstance(parsed, ExtensionListChange):
            await self._on_extension_list(parsed)
            return
        await self._sink.on_presence(parsed)

    async def on_session_start(self, start: SessionStart) -> None:
        if start is not SessionStart.RECOVERED:
            self._sink.resync()

    async def _on_extension_list(self, change: ExtensionListChange) -> None:
        deleted = [
            item.extension_id
            for item in change.changes
            if item.event_type is ExtensionEventType.DELETE
        ]
        if deleted:
            await self._sink.on_extensions_removed(deleted)
        self._directory_wanted.set()

    async def run_directory(self) -> None:
        """Refresh the directory when the extension list changes and every `directory_interval`."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._directory_wanted.wait(), self._directory_interval)
            self._directory_wanted.clear()
            await self._directory.refresh()
            self.stats.directory_refreshes += 1


class PresenceSnapshots:
    """Everyone's presence over REST (paged, 1,000 a page), as the updates the feed emits."""

    def __init__(self, source: PagedSource, *, clock: Callable[[], datetime] = _now) -> None:
        self._source = source
        self._clock = clock
        self.malformed = 0

    async def pages(self) -> AsyncIterator[Sequence[PresenceUpdate]]:
        async for page in self._source.get_records(ACCOUNT_PRESENCE_PATH, {"perPage": 1000}):
            received_at = self._clock()
            updates: list[PresenceUpdate] = []
            for record in page:
                try:
                    updates.append(parse_presence_record(record, received_at=received_at))
                except MalformedPayload as exc:
                    self.malformed += 1
                    log.warning("skipped a RingCentral presence record: %s", exc.reason)
            yield updates
