"""Notify-when-free: fires each persisted watch once its target has stayed available."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.presence import Availability
from bot.store import Store

log = logging.getLogger(__name__)

DirectMessage = Callable[[str, str, list[Any] | None], Awaitable[bool]]


class FreeText(Protocol):
    def __call__(
        self,
        target_id: str,
        was: Availability | None,
        busy_since: datetime | None,
        freed_at: datetime,
    ) -> tuple[str, list[Any]]: ...


@dataclass(slots=True)
class _Target:
    availability: Availability
    since: float
    busy_since: float | None
    was: Availability | None = None


class FreeNotifier:
    """Watches targets' availability; a target free for `free_debounce` seconds fires its watches.

    The debounce keeps back-to-back calls from firing: a new call inside it cancels the pending
    notice. Watches live in the store, so a restart loses none; each fires exactly once even when
    replicas race (the store's `mark_fired` is atomic).
    """

    def __init__(
        self,
        *,
        store: Store,
        team_id: str,
        direct_message: DirectMessage,
        free_text: FreeText,
        free_debounce: float = 20.0,
        expiry_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._team_id = team_id
        self._dm = direct_message
        self._free_text = free_text
        self._debounce = free_debounce
        self._expiry_interval = expiry_interval
        self._clock = clock
        self._targets: dict[str, _Target] = {}
        self._due: dict[str, float] = {}
        self._wake = asyncio.Event()
        self.sent = 0

    def availability_of(self, user_id: str) -> tuple[Availability, float] | None:
        target = self._targets.get(user_id)
        return (target.availability, target.since) if target else None

    async def on_availability(self, user_id: str, availability: Availability, since: float) -> None:
        """Someone's availability changed (or was first learned)."""
        previous = self._targets.get(user_id)
        busy_since = previous.busy_since if previous else None
        was = previous.was if previous else None
        if availability is Availability.AVAILABLE:
            if previous is not None and previous.availability is not Availability.AVAILABLE:
                busy_since = previous.since if busy_since is None else busy_since
                was = previous.availability
            self._targets[user_id] = _Target(availability, since, busy_since, was)
            if previous is None or previous.availability is not Availability.AVAILABLE:
                self._due[user_id] = since + self._debounce
                self._wake.set()
        else:
            if previous is None or previous.availability is Availability.AVAILABLE:
                busy_since = since
            self._targets[user_id] = _Target(availability, since, busy_since, availability)
            self._due.pop(user_id, None)

    def is_free(self, user_id: str) -> bool:
        target = self._targets.get(user_id)
        return target is not None and target.availability is Availability.AVAILABLE

    async def run(self) -> None:
        """Fire due watches; expire old ones. Owned by the supervisor."""
        await self._arm_after_restart()
        next_expiry = self._clock()
        while True:
            now = self._clock()
            if now >= next_expiry:
                await self._expire(now)
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

    async def _arm_after_restart(self) -> None:
        """Targets that became free while we were down get their notices after the debounce."""
        now = self._clock()
        for user_id, target in self._targets.items():
            if target.availability is Availability.AVAILABLE and user_id not in self._due:
                self._due[user_id] = max(now, target.since + self._debounce)

    async def _fire(self, target_id: str) -> None:
        target = self._targets.get(target_id)
        if target is None or target.availability is not Availability.AVAILABLE:
            return
        watches = await self._store.watches_on(self._team_id, target_id)
        if not watches:
            return
        for watch in watches:
            if not await self._store.mark_fired(watch.id):
                continue  # another replica (or an earlier pass) already told them
            busy_since = (
                datetime.fromtimestamp(target.busy_since, UTC)
                if target.busy_since is not None
                else watch.busy_since
            )
            freed_at = datetime.fromtimestamp(target.since, UTC)
            text, blocks = self._free_text(target_id, target.was, busy_since, freed_at)
            if await self._dm(watch.watcher_id, text, blocks):
                self.sent += 1
        target.busy_since = None

    async def _expire(self, now: float) -> None:
        expired = await self._store.expire_watches(datetime.fromtimestamp(now, UTC))
        if expired:
            log.info("%d watches expired unanswered", len(expired))

    def kick(self) -> None:
        """A watch was added: look again (the target may already be due)."""
        self._wake.set()
