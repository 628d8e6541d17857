"""Log lines anyone outside can trigger: at most one per kind per interval, with a count."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Final

DEFAULT_INTERVAL: Final = 60.0


class QuietLog:
    """Says "<message> (N times since the last line)" at most once per kind per interval.

    Kinds must come from a fixed set (an enum, a few literals), never from the request, so the
    table of kinds stays small.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self._unreported: dict[Hashable, int] = {}

    def warning(self, kind: Hashable, message: str, *args: object) -> None:
        count = self._unreported.get(kind, 0) + 1
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._unreported[kind] = count
            return
        self._last[kind] = now
        self._unreported[kind] = 0
        self._logger.warning(
            "%s (%d time(s) since the last such line; at most one every %g s)",
            message % args if args else message,
            count,
            self._interval,
        )
