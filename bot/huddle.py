"""Huddle → phone: a person in a Slack huddle shows Busy in RingCentral, and gets theirs back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

from bot.errors import BotError
from bot.presence import PresenceStatus
from bot.roster import RosterView

log = logging.getLogger(__name__)

MAX_HELD: Final = 20_000
"""People held Busy at once; past it a new huddle is not acted on (and logged)."""


class UserStatusSetter(Protocol):
    async def set_user_status(
        self, extension_id: str, status: PresenceStatus
    ) -> PresenceStatus | None: ...


@dataclass(frozen=True, slots=True)
class _Hold:
    extension_id: str
    previous: PresenceStatus


@dataclass(slots=True)
class HuddleStats:
    set_busy: int = 0
    restored: int = 0
    kept_theirs: int = 0
    failed: int = 0


class HuddleBusy:
    """Sets `userStatus` Busy when an opted-in, linked person joins a huddle; afterwards puts
    back what they had, unless they changed it meanwhile.

    Busy by hand is not a call: the status policy shows nothing in Slack for it (it is neither
    "on a call" nor "in a meeting"), so our own change never echoes back as "On a call".
    What is held lives in memory: a clean stop puts everyone back first (`release_all`); after a
    crash mid-huddle the person stays Busy until they change it (the README says so).
    """

    def __init__(
        self,
        *,
        roster: RosterView,
        setter: UserStatusSetter,
        wanted: Callable[[str], Awaitable[bool]],
    ) -> None:
        self._roster = roster
        self._setter = setter
        self._wanted = wanted
        self._held: dict[str, _Hold] = {}
        # One at a time: huddles are rare next to RingCentral's Medium budget (40 a minute), and
        # a join and a leave of one person must never cross.
        self._lock = asyncio.Lock()
        self.stats = HuddleStats()

    async def on_huddle_changed(self, user_id: str, in_huddle: bool) -> None:
        async with self._lock:
            if in_huddle:
                await self._joined(user_id)
            else:
                await self._left(user_id)

    def holding(self, user_id: str) -> bool:
        return user_id in self._held

    async def release_all(self) -> None:
        """On shutdown: put back everyone we hold Busy, as if their huddles had ended.

        What is held lives in memory, so a bot that stopped holding it would leave them Busy.
        """
        async with self._lock:
            for user_id in list(self._held):
                await self._left(user_id)

    async def _joined(self, user_id: str) -> None:
        if user_id in self._held:
            return
        extension_id = self._roster.extension_of(user_id)
        if extension_id is None or not await self._wanted(user_id):
            return
        if len(self._held) >= MAX_HELD:
            log.warning("not setting Busy for a huddle: %d people already held", MAX_HELD)
            return
        presence = self._roster.presence_of(user_id)
        previous = presence.user_status if presence is not None else None
        if previous is None:
            # Nothing to put back afterwards: leave their phone alone rather than guess.
            log.info("not setting %s Busy for a huddle: their presence is not known yet", user_id)
            return
        if previous is PresenceStatus.BUSY:
            return  # already Busy by their own hand: nothing to set, nothing to put back
        try:
            await self._setter.set_user_status(extension_id, PresenceStatus.BUSY)
        except BotError as exc:
            self.stats.failed += 1
            log.warning("could not set %s Busy for a huddle: %s", user_id, exc)
            return
        self._held[user_id] = _Hold(extension_id, previous)
        self.stats.set_busy += 1

    async def _left(self, user_id: str) -> None:
        hold = self._held.pop(user_id, None)
        if hold is None:
            return
        presence = self._roster.presence_of(user_id)
        now = presence.user_status if presence is not None else None
        # Busy is ours; what they had is harmless to set again (our event may not be in yet);
        # anything else they chose during the huddle, and it stays.
        if now not in (PresenceStatus.BUSY, hold.previous, None):
            self.stats.kept_theirs += 1
            return
        try:
            await self._setter.set_user_status(hold.extension_id, hold.previous)
        except BotError as exc:
            self.stats.failed += 1
            log.warning("could not put back %s's presence after a huddle: %s", user_id, exc)
            return
        self.stats.restored += 1
