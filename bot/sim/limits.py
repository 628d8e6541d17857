"""Time scaling and sliding-window rate limits shared by both simulators."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TimeScale:
    """Divides every duration a simulator enforces; clocks and timestamps stay real."""

    factor: float = 1.0

    def __post_init__(self) -> None:
        if not self.factor > 0:
            raise ValueError("time scale must be positive")

    def seconds(self, simulated: float) -> float:
        """Real seconds that stand for `simulated` seconds of the real service."""
        return simulated / self.factor

    @staticmethod
    def retry_after_header(real_seconds: float) -> str:
        """A valid Retry-After value (whole seconds, at least 1) covering `real_seconds`."""
        return str(max(1, math.ceil(real_seconds - 1e-9)))


@dataclass(slots=True)
class SlidingWindow:
    """At most `limit` events in any `window` seconds, optionally with a penalty after a refusal.

    `penalty` > 0 models RingCentral: once refused, every request until the penalty ends is
    refused too and restarts it. `penalty` == 0 models Slack: refused until the window frees a slot.
    """

    limit: int
    window: float
    penalty: float = 0.0
    clock: Callable[[], float] = time.monotonic
    _events: deque[float] = field(default_factory=deque)
    _penalty_until: float = 0.0

    def _trim(self, now: float) -> None:
        while self._events and self._events[0] <= now - self.window:
            self._events.popleft()

    def try_acquire(self) -> float | None:
        """Count one request; return None if allowed, else the real seconds to wait."""
        now = self.clock()
        if self.penalty and now < self._penalty_until:
            self._penalty_until = now + self.penalty
            return self.penalty
        self._trim(now)
        if len(self._events) < self.limit:
            self._events.append(now)
            return None
        if self.penalty:
            self._penalty_until = now + self.penalty
            return self.penalty
        return max(0.0, self._events[0] + self.window - now)

    def remaining(self) -> int:
        self._trim(self.clock())
        return max(0, self.limit - len(self._events))

    def penalised(self) -> bool:
        return self.clock() < self._penalty_until
