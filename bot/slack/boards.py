"""Home boards republished when a starred colleague changes, coalesced and within Slack's budget."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import Protocol

from bot.roster import PersonChange
from bot.store.fence import ensure_leading

log = logging.getLogger(__name__)


class HomePublisher(Protocol):
    async def publish(self, viewer: str) -> Collection[str]:
        """Publish `viewer`'s Home; returns the people their board shows."""
        ...


class BoardRefresher:
    """A peer under the coordinator: queues each viewer whose board shows someone who changed,
    and republishes at a safe pace.

    `views.publish` is Tier 4 (about 100 a minute). A popular colleague starred by hundreds, or
    a burst of calls, would otherwise publish hundreds of views in the presence feed's path and
    draw 429s. A viewer already queued is not queued twice: the one publish shows every change.
    It keeps who each board shows, indexed by the person shown, so a change costs one lookup
    however many boards there are.
    """

    def __init__(
        self,
        *,
        home: HomePublisher,
        publishes_per_window: int = 80,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if publishes_per_window < 1:
            raise ValueError("publishes_per_window must be at least 1")
        self._home = home
        self._limit = publishes_per_window
        self._window = window
        self._clock = clock
        self._board_of: dict[str, frozenset[str]] = {}
        # Dicts, not sets: viewers are republished in the order they first showed someone.
        self._viewers_of: dict[str, dict[str, None]] = {}
        # A dict keeps arrival order and makes "already queued" a lookup.
        self._queued: dict[str, None] = {}
        self._sent: deque[float] = deque()
        self._wake = asyncio.Event()
        self.published = 0

    async def on_person_change(self, change: PersonChange) -> None:
        """Never waits for Slack, so the presence feed is not held up."""
        self.changed(change.user_id)

    async def on_resync(self) -> None:
        """Boards show what they showed: a snapshot's real changes arrive one by one."""

    def changed(self, user_id: str) -> None:
        for viewer in self._viewers_of.get(user_id, ()):
            self._queued.setdefault(viewer, None)
        if self._queued:
            self._wake.set()

    def queued(self) -> int:
        return len(self._queued)

    def viewers_of(self, user_id: str) -> frozenset[str]:
        return frozenset(self._viewers_of.get(user_id, ()))

    async def show(self, viewer: str) -> None:
        """Publish `viewer`'s board now (they opened it or pressed a button on it)."""
        ensure_leading()
        self._remember(viewer, await self._home.publish(viewer))

    def _remember(self, viewer: str, shown: Collection[str]) -> None:
        board = frozenset(shown)
        previous = self._board_of.get(viewer, frozenset())
        for gone in sorted(previous - board):
            viewers = self._viewers_of.get(gone)
            if viewers is not None:
                viewers.pop(viewer, None)
                if not viewers:
                    del self._viewers_of[gone]
        for added in sorted(board - previous):
            self._viewers_of.setdefault(added, {})[viewer] = None
        self._board_of[viewer] = board

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queued:
                await self._budget()
                viewer = next(iter(self._queued))
                del self._queued[viewer]
                self._sent.append(self._clock())
                try:
                    await self.show(viewer)
                except Exception:
                    log.exception("republishing %s's Home board failed; continuing", viewer)
                self.published += 1

    async def _budget(self) -> None:
        while True:
            now = self._clock()
            while self._sent and self._sent[0] <= now - self._window:
                self._sent.popleft()
            if len(self._sent) < self._limit:
                return
            await asyncio.sleep(self._sent[0] + self._window - now)
