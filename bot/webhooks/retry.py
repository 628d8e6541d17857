"""When a failed webhook delivery is tried again: Standard Webhooks' schedule, with jitter."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

SCHEDULE: Final = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
"""Seconds to wait before each attempt after the one before failed: immediately, 5 s, 5 min,
30 min, 2 h, 5 h, 10 h, 10 h. Eight attempts over about 27 hours, then the delivery fails."""
JITTER: Final = 0.2
"""Each wait is stretched or shrunk by up to this fraction, so retries do not arrive in step."""
RETRY_AFTER_CAP: Final = 86_400.0
"""A receiver's Retry-After is honoured up to a day."""


class RetryPolicy:
    """How long to wait after a failed attempt, on the clock `scale` maps to real seconds."""

    def __init__(
        self,
        *,
        scale: Callable[[float], float] = float,
        jitter: float = JITTER,
        rng: random.Random | None = None,
    ) -> None:
        self._scale = scale
        self._jitter = jitter
        self._rng = rng or random.Random()

    @property
    def attempts(self) -> int:
        return len(SCHEDULE)

    @property
    def first_wait(self) -> float:
        """Real seconds of the schedule's first wait (5 s), without jitter."""
        return self._scale(SCHEDULE[1])

    def delay_after(self, attempts: int, retry_after: float | None = None) -> float | None:
        """Real seconds until the next attempt after `attempts` failed ones; None when the
        schedule is spent. A Retry-After from the receiver is never undercut."""
        if attempts >= len(SCHEDULE):
            return None
        base = self._scale(SCHEDULE[max(attempts, 1)])
        delay = base * self._rng.uniform(1.0 - self._jitter, 1.0 + self._jitter)
        if retry_after is not None:
            delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
        return delay
