"""The coordinator with its real peers (status writer, notifier) on a real store, in virtual time.

Slack is the only thing faked, at the writer's named write step (`ProfileWriter`) and the DM
step (the outbox's sender, the token notice's messenger): the fake keeps each profile as Slack
would and records every write and DM, and the write step can be held to open a window for a race.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from bench.virtual_time import run_in_virtual_time
from bot.coordinator import Coordinator
from bot.policy import EMPTY_STATUS, SlackStatus
from bot.presence import PresenceStatus, PresenceUpdate, TelephonyStatus, UpdateSource
from bot.roster import Roster
from bot.slack.messages import DmOutcome, DmResult, TokenLostNotice
from bot.slack.notifier import FreeNotifier
from bot.slack.outbox import DmOutbox
from bot.slack.profiles import ProfileWrite
from bot.slack.scheduler import SendOutcome, StatusScheduler
from bot.slack.status import StatusWriter
from bot.store import Store

_T = TypeVar("_T")

EPOCH = 1_800_000_000.0
TEAM = "T1"
CALL = SlackStatus("On a call", ":telephone_receiver:")
VACATIONING = SlackStatus("Vacationing", ":palm_tree:")
LUNCH = SlackStatus("Lunch", ":sandwich:")

Lands = Literal["on_request", "on_answer"]


@dataclass(frozen=True, slots=True)
class Write:
    at: float
    user_id: str
    status: SlackStatus


class Gate:
    """Holds whoever passes until it is opened; counts who is waiting."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self.waiting = 0

    def close(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    async def passage(self) -> None:
        self.waiting += 1
        try:
            await self._open.wait()
        finally:
            self.waiting -= 1


@dataclass
class FakeSlack:
    """Slack's profiles behind `ProfileWriter`, and its DMs behind the notifier's messenger."""

    clock: Callable[[], float]
    lands: Lands = "on_request"
    """When Slack applies our write: as the request arrives, or just before it answers."""
    profiles: dict[str, SlackStatus] = field(default_factory=dict)
    writes: list[Write] = field(default_factory=list)
    dms: list[tuple[str, str]] = field(default_factory=list)
    connected: set[str] = field(default_factory=set)
    lookups: Gate = field(default_factory=Gate)
    answers: Gate = field(default_factory=Gate)
    revoked: set[str] = field(default_factory=set)
    """People whose stored token Slack refuses (`token_revoked`) until they connect again."""

    async def can_write(self, user_id: str) -> bool:
        await self.lookups.passage()
        return user_id in self.connected

    def forget(self, user_id: str) -> None:
        pass

    async def set_status(self, user_id: str, status: SlackStatus) -> ProfileWrite:
        self.writes.append(Write(self.clock(), user_id, status))
        if user_id in self.revoked:
            self.connected.discard(user_id)  # as the token store does: none until reconnected
            return ProfileWrite(SendOutcome.GONE, token_lost=True)
        if self.lands == "on_request":
            self.profiles[user_id] = status
        await self.answers.passage()
        if self.lands == "on_answer":
            self.profiles[user_id] = status
        return ProfileWrite(SendOutcome.OK)

    async def direct_message(
        self, user_id: str, text: str, blocks: list[Any] | None = None
    ) -> bool:
        self.dms.append((user_id, text))
        return True

    async def send(self, user_id: str, text: str, blocks: list[Any] | None = None) -> DmResult:
        self.dms.append((user_id, text))
        return DmResult(DmOutcome.SENT)

    def shows(self, user_id: str) -> SlackStatus:
        """The words and emoji the profile shows now (an expired status shows nothing)."""
        shown = self.profiles.get(user_id, EMPTY_STATUS).shown_at(self.clock())
        return SlackStatus(shown.text, shown.emoji)

    def writes_of(self, user_id: str) -> list[SlackStatus]:
        return [
            SlackStatus(w.status.text, w.status.emoji) for w in self.writes if w.user_id == user_id
        ]


@dataclass
class _NoSnapshots:
    async def pages(self) -> AsyncIterator[list[PresenceUpdate]]:
        return
        yield []  # an async generator that yields nothing


@dataclass
class Hub:
    loop: asyncio.AbstractEventLoop
    store: Store
    slack: FakeSlack
    roster: Roster
    scheduler: StatusScheduler
    writer: StatusWriter
    notifier: FreeNotifier
    outbox: DmOutbox
    coordinator: Coordinator
    sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def now(self) -> float:
        return self.loop.time()

    def wall(self) -> float:
        return EPOCH + self.loop.time()

    async def until(self, seconds: float) -> None:
        """Let virtual time run to loop time `seconds`."""
        await asyncio.sleep(max(0.0, seconds - self.loop.time()))

    async def phone(self, extension_id: str, telephony: TelephonyStatus) -> None:
        """RingCentral reports the extension's telephony status (as a live event)."""
        await self.coordinator.on_presence(
            PresenceUpdate(
                extension_id,
                UpdateSource.EVENT,
                datetime.fromtimestamp(self.wall(), UTC),
                sequence=next(self.sequence),
                presence_status=PresenceStatus.AVAILABLE,
                user_status=PresenceStatus.AVAILABLE,
                telephony_status=telephony,
            )
        )

    def phone_soon(self, extension_id: str, telephony: TelephonyStatus) -> asyncio.Task[None]:
        """The same, taken in by a task of its own (the way the WebSocket delivers it)."""
        return asyncio.create_task(self.phone(extension_id, telephony))

    async def by_hand(self, user_id: str, status: SlackStatus) -> None:
        """The person sets their status in Slack, and Slack tells the bot."""
        self.slack.profiles[user_id] = status
        await self.writer.on_status_changed(user_id, status)

    async def echo(self, user_id: str) -> None:
        """Slack's `user_status_changed` for whatever the profile shows now."""
        await self.writer.on_status_changed(user_id, self.slack.profiles.get(user_id, EMPTY_STATUS))

    async def settled(self) -> None:
        await self.coordinator.wait_idle()
        await self.writer.drain()


@contextlib.asynccontextmanager
async def running_hub(
    tmp_path: Path,
    people: dict[str, str],
    *,
    lands: Lands = "on_request",
    free_debounce: float = 20.0,
) -> AsyncIterator[Hub]:
    """A hub for `people` (Slack user id → extension id), everyone connected and available."""
    loop = asyncio.get_running_loop()

    def wall() -> float:
        return EPOCH + loop.time()

    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", clock=lambda: datetime.now(UTC))
    await store.open()
    slack = FakeSlack(wall, lands, connected=set(people))
    roster = Roster()
    scheduler = StatusScheduler(
        call_debounce=2.0,
        gap_hold=2.0,
        clock=loop.time,
        wall_clock=wall,
        rng=random.Random(7),
    )
    writer = StatusWriter(
        team_id=TEAM,
        store=store,
        roster=roster,
        profiles=slack,
        scheduler=scheduler,
        notice=TokenLostNotice(
            store=store, messages=slack, team_id=TEAM, connect_url="http://bot/slack/install"
        ),
        known_statuses=StartStatuses(slack),
        wall_clock=wall,
    )
    outbox = DmOutbox(store=store, team_id=TEAM, sender=slack, clock=wall, rng=random.Random(7))
    notifier = FreeNotifier(
        store=store,
        team_id=TEAM,
        roster=roster,
        outbox=outbox,
        free_debounce=free_debounce,
        clock=wall,
    )
    coordinator = Coordinator(
        team_id=TEAM,
        roster=roster,
        snapshots=_NoSnapshots(),
        links=store,
        consumers=[writer, notifier],
        memory=store,
        clock=lambda: datetime.fromtimestamp(wall(), UTC),
    )
    hub = Hub(loop, store, slack, roster, scheduler, writer, notifier, outbox, coordinator)
    tasks: list[asyncio.Task[None]] = []
    try:
        for user_id, extension_id in people.items():
            await store.link(TEAM, user_id, extension_id, "manual")
        await writer.load()
        await coordinator.reload_links()
        for extension_id in people.values():
            await hub.phone(extension_id, TelephonyStatus.NO_CALL)
        tasks = [
            asyncio.create_task(writer.run()),
            asyncio.create_task(notifier.run()),
            asyncio.create_task(outbox.run()),
        ]
        yield hub
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()


class StartStatuses:
    """The statuses Slack reported at start: the fake's profiles, read when first asked."""

    def __init__(self, slack: FakeSlack) -> None:
        self._slack = slack

    def status_of(self, user_id: str) -> SlackStatus | None:
        return self._slack.profiles.get(user_id)


def virtual(body: Callable[[], Awaitable[_T]]) -> _T:
    async def main() -> _T:
        return await body()

    return run_in_virtual_time(main())
