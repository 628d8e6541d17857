"""Snoozes a person's Slack notifications while they are on a call, and ends the snooze after.

A peer under the coordinator with its own task and its own Slack budget, so it never delays a
status write: `on_person_change` only notes what is wanted, and one loop does the calls at the
pace of dnd.setSnooze and dnd.endSnooze (Tier 2) and dnd.info (Tier 3). Someone already in Do
Not Disturb when the call starts (their own snooze, or inside their schedule) is left exactly as
they were, before and after; a snooze of ours they changed during the call is theirs to keep.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.presence import Availability
from bot.roster import PersonChange, RosterView
from bot.store.fence import ensure_leading

log = logging.getLogger(__name__)

MAX_PEOPLE: Final = 50_000
"""People tracked at once (on a call, or with a snooze of ours to end); more are not snoozed."""


class TokenSource(Protocol):
    async def user_token(self, user_id: str) -> str | None: ...


class _Window:
    """At most `limit` calls in any `window` seconds, as Slack counts its tiers; `take` waits."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self._sent: deque[float] = deque(maxlen=limit)
        # Slack counts arrivals, we count departures: a tenth of a window of slack for the
        # difference (with a scaled clock, milliseconds of latency are a good part of a window).
        self._window = window * 1.1
        self._clock = clock
        self._paused_until = 0.0

    def penalise(self, seconds: float) -> None:
        """Slack said 429: nothing goes until Retry-After has passed."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def take(self) -> None:
        while True:
            now = self._clock()
            wait = self._paused_until - now
            if len(self._sent) == self._sent.maxlen:
                wait = max(wait, self._sent[0] + self._window - now)
            if wait <= 0:
                self._sent.append(now)
                return
            await asyncio.sleep(wait)


@dataclass(slots=True)
class _Person:
    on_call: bool = False
    ours_until: int | None = None
    """The end of the snooze we set (unix seconds), while we hold one."""
    left_alone: bool = False
    """Already in Do Not Disturb when this call began, or we could not act: hands off."""


@dataclass(slots=True)
class SnoozeStats:
    snoozed: int = 0
    renewed: int = 0
    ended: int = 0
    left_alone: int = 0
    """Calls during which the person was already in Do Not Disturb."""
    kept_theirs: int = 0
    """Snoozes of ours the person changed during the call, so not ended by us."""
    failed: int = 0


@dataclass(slots=True)
class _Queue:
    due: dict[str, None] = field(default_factory=dict)
    """People to act on now, oldest first (a dict is an ordered set)."""
    renewals: list[tuple[float, str]] = field(default_factory=list)


class SnoozeKeeper:
    """Keeps opted-in people's notifications snoozed for exactly the length of their calls."""

    def __init__(
        self,
        *,
        roster: RosterView,
        client: AsyncWebClient,
        tokens: TokenSource,
        wanted: Callable[[str], Awaitable[bool]],
        window: float = 60.0,
        writes_per_window: int = 20,
        reads_per_window: int = 50,
        snooze_minutes: int = 60,
        renew_before: float = 600.0,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._roster = roster
        self._client = client
        self._tokens = tokens
        self._wanted = wanted
        self._snooze_minutes = snooze_minutes
        # Renewal is measured against Slack's snooze end, which is real minutes on its clock.
        self._renew_before = renew_before
        self._wall = wall_clock
        self._clock = clock
        self._writes = _Window(writes_per_window, window, clock)
        self._reads = _Window(reads_per_window, window, clock)
        self._people: dict[str, _Person] = {}
        self._queue = _Queue()
        self._wake = asyncio.Event()
        self._busy = False
        self.stats = SnoozeStats()

    # ------------------------------------------------------------------------ from the hub

    async def on_person_change(self, change: PersonChange) -> None:
        self._note(change.user_id, change.new is Availability.ON_CALL)

    async def on_resync(self) -> None:
        for user_id in list(self._people):
            presence = self._roster.presence_of(user_id)
            self._note(
                user_id, presence is not None and presence.availability is Availability.ON_CALL
            )

    def _note(self, user_id: str, on_call: bool) -> None:
        person = self._people.get(user_id)
        if person is None:
            if not on_call:
                return
            if len(self._people) >= MAX_PEOPLE:
                log.warning("not snoozing a call: %d people already tracked", MAX_PEOPLE)
                return
            person = self._people[user_id] = _Person()
        if person.on_call == on_call:
            return
        person.on_call = on_call
        if on_call:
            person.left_alone = False
        self._queue.due[user_id] = None
        self._wake.set()

    # ------------------------------------------------------------------------ the loop

    def pending(self) -> int:
        """People with a call to make now (renewals not counted), or one in progress."""
        return len(self._queue.due) + (1 if self._busy else 0)

    def snoozed_by_us(self, user_id: str) -> bool:
        person = self._people.get(user_id)
        return person is not None and person.ours_until is not None

    async def run(self) -> None:
        while True:
            user_id = await self._next()
            self._busy = True
            try:
                await self._act(user_id)
            except SlackApiError as exc:
                self._failed(user_id, exc)
            except (aiohttp.ClientError, TimeoutError) as exc:
                # Slack unreachable: try this person again after a pause.
                log.info("Slack unreachable for a notification snooze: %s", type(exc).__name__)
                self._writes.penalise(1.0)
                self._reads.penalise(1.0)
                self._queue.due[user_id] = None
            finally:
                self._busy = False

    async def _next(self) -> str:
        queue = self._queue
        while True:
            if queue.due:
                user_id = next(iter(queue.due))
                del queue.due[user_id]
                return user_id
            now = self._clock()
            if queue.renewals and queue.renewals[0][0] <= now:
                _at, user_id = heapq.heappop(queue.renewals)
                return user_id
            timeout = queue.renewals[0][0] - now if queue.renewals else None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _act(self, user_id: str) -> None:
        person = self._people.get(user_id)
        if person is None:
            return
        if not person.on_call:
            await self._end(user_id, person)
            return
        if person.left_alone:
            return
        token = await self._tokens.user_token(user_id)
        if token is None:
            self._people.pop(user_id, None)
            return
        if person.ours_until is None:
            if not await self._wanted(user_id):
                self._people.pop(user_id, None)
                return
            await self._reads.take()
            info = await self._client.dnd_info(token=token)
            if _in_dnd(info.data, self._wall()):
                person.left_alone = True
                self.stats.left_alone += 1
                return
            renewing = False
        else:
            if person.ours_until - self._wall() > self._renew_before:
                return  # an early or stale renewal: the one due is still queued
            renewing = True
        await self._writes.take()
        ensure_leading()
        answer = await self._client.dnd_setSnooze(num_minutes=self._snooze_minutes, token=token)
        endtime = answer.data.get("snooze_endtime") if isinstance(answer.data, dict) else None
        person.ours_until = int(endtime) if isinstance(endtime, int | float) else None
        if renewing:
            self.stats.renewed += 1
        else:
            self.stats.snoozed += 1
        if person.ours_until is not None:
            self._schedule_renewal(user_id, person.ours_until)
        if not person.on_call:  # the call ended while we were snoozing: end it now
            self._queue.due[user_id] = None

    async def release_all(self) -> None:
        """On shutdown: end the snoozes we hold, as their calls would have (the next process
        does not know them). Stopped at the caller's deadline, the rest end by themselves."""
        for user_id, person in list(self._people.items()):
            if person.ours_until is None:
                continue
            try:
                await self._end(user_id, person)
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                log.info("could not end a notification snooze on the way out: %s", exc)

    async def _end(self, user_id: str, person: _Person) -> None:
        ours = person.ours_until
        self._people.pop(user_id, None)
        if ours is None:
            return
        token = await self._tokens.user_token(user_id)
        if token is None:
            return  # the snooze ends by itself at `ours`
        await self._reads.take()
        info = (await self._client.dnd_info(token=token)).data
        if not (isinstance(info, dict) and info.get("snooze_enabled")):
            return
        if info.get("snooze_endtime") != ours:
            self.stats.kept_theirs += 1
            return
        await self._writes.take()
        ensure_leading()
        await self._client.dnd_endSnooze(token=token)
        self.stats.ended += 1

    def _schedule_renewal(self, user_id: str, until: int) -> None:
        delay = max(0.0, until - self._renew_before - self._wall())
        heapq.heappush(self._queue.renewals, (self._clock() + delay, user_id))
        self._wake.set()

    def _failed(self, user_id: str, exc: SlackApiError) -> None:
        response = exc.response
        error = response.get("error") if response is not None else None
        if response is not None and response.status_code == 429:
            retry = _retry_after(response.headers)
            self._writes.penalise(retry)
            self._reads.penalise(retry)
            self._queue.due[user_id] = None
            return
        self.stats.failed += 1
        person = self._people.get(user_id)
        if person is not None and person.on_call:
            person.left_alone = True  # e.g. connected before the dnd scopes: no retries this call
        log.info("could not change %s's notification snooze: %s", user_id, error)


def _in_dnd(info: Any, now: float) -> bool:
    """Their notifications are already held: a snooze, or inside their DND schedule."""
    if not isinstance(info, dict):
        return False
    if info.get("snooze_enabled"):
        return True
    start, end = info.get("next_dnd_start_ts"), info.get("next_dnd_end_ts")
    return (
        bool(info.get("dnd_enabled"))
        and isinstance(start, int | float)
        and isinstance(end, int | float)
        and start <= now < end
    )


def _retry_after(headers: Any) -> float:
    """Seconds Slack asked us to wait (1 when it did not say, or said nonsense)."""
    value = headers.get("Retry-After") or headers.get("retry-after") if headers else None
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(1.0, float(str(value)))
    except ValueError:
        return 1.0
