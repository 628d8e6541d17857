"""The gate: requests waiting for someone to become available, woken by the hub, never polling."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from bot.presence import Availability
from bot.roster import PersonChange

MAX_WAITERS: Final = 20_000
"""Requests held open at once, across everyone: each costs a future and an open socket."""


class TooManyWaiters(Exception):
    """The gate is holding as many requests as it may."""


class AvailabilityGate:
    """A peer under the coordinator: wakes the requests waiting on a person who became free.

    A woken request looks again (sharing or privacy may still hide the person), so a wake-up
    is a hint, never the answer.
    """

    def __init__(self, max_waiters: int = MAX_WAITERS) -> None:
        self._max = max_waiters
        self._waiting: dict[str, set[asyncio.Future[None]]] = {}
        self._count = 0

    @property
    def waiting(self) -> int:
        return self._count

    async def on_person_change(self, change: PersonChange) -> None:
        if change.new is Availability.AVAILABLE:
            self._wake(change.user_id)

    async def on_resync(self) -> None:
        for user_id in list(self._waiting):
            self._wake(user_id)

    def _wake(self, user_id: str) -> None:
        for future in self._waiting.pop(user_id, ()):
            if not future.done():
                future.set_result(None)

    async def wait(self, user_id: str, seconds: float) -> None:
        """Return when `user_id` may have become available, or after `seconds`."""
        if self._count >= self._max:
            raise TooManyWaiters
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(user_id, set()).add(future)
        self._count += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, seconds)
        finally:
            self._count -= 1
            waiters = self._waiting.get(user_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiting[user_id]
