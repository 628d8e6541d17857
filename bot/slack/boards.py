"""Home boards republished when a starred colleague changes, coalesced and within Slack's budget."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from bot.presence import Availability

log = logging.getLogger(__name__)


class BoardRefresher:
    """Queues each viewer whose board shows someone who changed, and republishes at a safe pace.

    `views.publish` is Tier 4 (about 100 a minute). A popular colleague starred by hundreds, or
    a burst of calls, would otherwise publish hundreds of views in the presence feed's path and
    draw 429s. A viewer already queued is not queued twice: the one publish shows every change.
    """

    def __init__(
        self,
        *,
        viewers_of: Callable[[str], Iterable[str]],
        publish: Callable[[str], Awaitable[None]],
        publishes_per_window: int = 80,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if publishes_per_window < 1:
            raise ValueError("publishes_per_window must be at least 1")
        self._viewers_of = viewers_of
        self._publish = publish
        self._limit = publishes_per_window
        self._window = window
        self._clock = clock
        # A dict keeps arrival order and makes "already queued" a lookup.
        self._queued: dict[str, None] = {}
        self._sent: deque[float] = deque()
        self._wake = asyncio.Event()
        self.published = 0

    async def on_availability(self, user_id: str, availability: Availability, since: float) -> None:
        """An availability listener: never waits for Slack, so the presence feed is not held up."""
        self.changed(user_id)

    def changed(self, user_id: str) -> None:
        for viewer in self._viewers_of(user_id):
            self._queued.setdefault(viewer, None)
        if self._queued:
            self._wake.set()

    def queued(self) -> int:
        return len(self._queued)

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
                    await self._publish(viewer)
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
