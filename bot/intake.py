"""Presence intake: takes every event off the socket at once and feeds the hub the latest of each.

The WebSocket must be read as fast as RingCentral sends, whatever the hub is doing: a reader that
falls behind is disconnected by the gateway and loses events. So the feed hands each parsed event
here without waiting, and one owned task feeds the hub. While the hub keeps up, each event passes
through alone, in order. When it falls behind (BEHIND_BACKLOG events waiting), a new event of an
extension that already has one waiting folds into it (only the latest presence of a person matters
for what is shown), so what waits is bounded by the number of extensions, never by the rate; being
behind is logged and shown in /healthz.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from bot.presence import PresenceUpdate, fold

log = logging.getLogger(__name__)

LAG_SAMPLES: Final = 8192
"""Recent intake lags kept for /healthz and the benchmarks (a bounded ring)."""
BEHIND_BACKLOG: Final = 1000
"""Events waiting at once that count as having fallen behind (half a second at 2,000 a second)."""
YIELD_EVERY: Final = 64
"""Events fed to the hub between two turns of the loop for everything else (the socket first)."""


class Hub(Protocol):
    """The coordinator's inputs, as the feed calls them."""

    async def on_presence(self, update: PresenceUpdate) -> None: ...
    async def on_extensions_removed(self, extension_ids: Sequence[str]) -> None: ...
    def resync(self) -> None: ...


class IntakeTimer(Protocol):
    """Told each event's intake lag in seconds (the /metrics histogram)."""

    def observe(self, amount: float) -> None: ...


@dataclass(slots=True)
class IntakeStats:
    received: int = 0
    """Presence events handed in by the feed."""
    applied: int = 0
    """Events (after folding) the hub has taken in."""
    folded: int = 0
    """Events folded into a later one of the same extension because the hub was behind."""
    backlog_peak: int = 0
    """The most events ever waiting at once."""
    fell_behind: int = 0
    """Times the backlog reached BEHIND_BACKLOG."""


@dataclass(slots=True)
class _Waiting:
    update: PresenceUpdate
    since: float
    """When its oldest folded event arrived: the lag counts from there."""


class PresenceIntake:
    """Between the feed and the hub: never blocks the reader, folds per extension when behind.

    The lag recorded for each event is from its arrival here (the frame was read and parsed
    moments before, in the same call) to the hub having told every consumer, the status writer's
    decision included.
    """

    def __init__(
        self,
        hub: Hub,
        *,
        behind_backlog: int = BEHIND_BACKLOG,
        lag_samples: int = LAG_SAMPLES,
        timer: IntakeTimer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hub = hub
        self._timer = timer
        self._behind_backlog = behind_backlog
        self._clock = clock
        self._queue: deque[_Waiting] = deque()
        self._last_waiting: dict[str, _Waiting] = {}
        """Each extension's latest event still in the queue: what a new one folds into."""
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._behind = False
        self._lags: deque[float] = deque(maxlen=lag_samples)
        self.stats = IntakeStats()

    # ------------------------------------------------------------------ the feed's side

    async def on_presence(self, update: PresenceUpdate) -> None:
        self.stats.received += 1
        self._idle.clear()
        self._wake.set()
        extension_id = update.extension_id
        if self._behind:
            waiting = self._last_waiting.get(extension_id)
            if waiting is not None:
                waiting.update = fold(waiting.update, update)
                self.stats.folded += 1
                return
        waiting = _Waiting(update, self._clock())
        self._queue.append(waiting)
        self._last_waiting[extension_id] = waiting
        backlog = len(self._queue)
        if backlog > self.stats.backlog_peak:
            self.stats.backlog_peak = backlog
        if backlog >= self._behind_backlog and not self._behind:
            self._behind = True
            self.stats.fell_behind += 1
            log.warning(
                "presence intake is behind: %d events waiting; folding each extension's "
                "events into its latest until it catches up",
                backlog,
            )

    async def on_extensions_removed(self, extension_ids: Sequence[str]) -> None:
        gone = set(extension_ids)
        if any(w.update.extension_id in gone for w in self._last_waiting.values()):
            self._queue = deque(w for w in self._queue if w.update.extension_id not in gone)
            for extension_id in gone:
                self._last_waiting.pop(extension_id, None)
        await self._hub.on_extensions_removed(extension_ids)

    def resync(self) -> None:
        self._hub.resync()

    # ------------------------------------------------------------------ the hub's side

    async def run(self) -> None:
        """Feed the hub, oldest first, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._drain()

    async def _drain(self) -> None:
        fed = 0
        while self._queue:
            waiting = self._queue.popleft()
            extension_id = waiting.update.extension_id
            if self._last_waiting.get(extension_id) is waiting:
                del self._last_waiting[extension_id]
            try:
                await self._hub.on_presence(waiting.update)
            except Exception:
                log.exception("the hub failed on a presence event; continuing")
            lag = self._clock() - waiting.since
            self._lags.append(lag)
            if self._timer is not None:
                self._timer.observe(lag)
            self.stats.applied += 1
            fed += 1
            if self._behind and len(self._queue) < self._behind_backlog // 2:
                self._behind = False
                log.info(
                    "presence intake caught up (%d events folded so far, at most %d waited "
                    "at once)",
                    self.stats.folded,
                    self.stats.backlog_peak,
                )
            if fed % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        self._idle.set()

    # ------------------------------------------------------------------ reading it

    @property
    def backlog(self) -> int:
        """Events waiting for the hub."""
        return len(self._queue)

    @property
    def behind(self) -> bool:
        return self._behind

    @property
    def idle(self) -> bool:
        return not self._queue and self._idle.is_set()

    async def wait_idle(self) -> None:
        while not self.idle:
            await self._idle.wait()

    def recent_lags(self) -> list[float]:
        """The last few thousand events' lags in seconds, oldest first."""
        return list(self._lags)

    def health(self) -> dict[str, object]:
        lags = sorted(self._lags)
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else None
        return {
            "backlog": self.backlog,
            "behind": self._behind,
            "folded": self.stats.folded,
            "lag_p99_ms": None if p99 is None else round(p99 * 1000, 1),
        }
