"""A follower's view on a real PostgreSQL: fed by a leader's coordinator over the bus, or the store.

The leader is a real `Coordinator` with the `LeaderMirror`; the follower a `FollowerPresence`
with the API's gate, and an `EventTail` under a follower's `AvailabilityFeed`. Each side has
its own store object and bus, as two processes would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bot.api.events import AvailabilityEvent, AvailabilityFeed, Subscription
from bot.api.gate import AvailabilityGate
from bot.api.people import PeopleView, SlackPerson
from bot.coordinator import Coordinator, PersonConsumer
from bot.presence import (
    Availability,
    Presence,
    PresenceStatus,
    PresenceUpdate,
    TelephonyStatus,
    UpdateSource,
)
from bot.replicas.follower import FollowerPresence
from bot.replicas.mirror import LeaderMirror
from bot.replicas.tail import EventTail
from bot.roster import Roster, availability_of
from bot.store import Store
from tests.helpers import wait_until
from tests.integration.replica_fixtures import (
    Epoch,
    bus,
    needs_postgres,
    pg_url,
    terminate_bus_sessions,
)

__all__ = ["pg_url"]  # the fixture, imported so pytest finds it here

pytestmark = list(needs_postgres)

TEAM = "T1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class NoSnapshots:
    async def pages(self) -> AsyncIterator[list[PresenceUpdate]]:
        return
        yield


class NoSlackPeople:
    def get(self, _user_id: str) -> SlackPerson | None:
        return None

    def by_email(self, _email: str) -> SlackPerson | None:
        return None

    def __iter__(self) -> Iterator[SlackPerson]:
        return iter(())


class NoExtensions:
    def by_id(self, _extension_id: str) -> None:
        return None

    def by_number(self, _number: str) -> None:
        return None


def leading(
    roster: Roster, store: Store, mirror: LeaderMirror, consumers: Sequence[PersonConsumer] = ()
) -> Coordinator:
    """The leader's hub as the app builds it, telling the other replicas through `mirror`."""
    return Coordinator(
        team_id=TEAM,
        roster=roster,
        snapshots=NoSnapshots(),
        links=store,
        consumers=consumers,
        memory=store,
        mirror=mirror,
    )


def phone(extension_id: str, telephony: TelephonyStatus) -> PresenceUpdate:
    return PresenceUpdate(
        extension_id,
        UpdateSource.EVENT,
        received_at=datetime.now(UTC),
        presence_status=PresenceStatus.AVAILABLE,
        telephony_status=telephony,
    )


def view(roster: Roster) -> tuple[dict[str, Any], dict[str, Presence]]:
    """What a person asking either replica would learn: who is whose, and every presence."""
    people = {
        user: (roster.extension_of(user), availability_of(roster, user))
        for user in roster.linked_people()
    }
    # The leader sends a presence only when more than its `updated_at` moved.
    presences = {p.extension_id: replace(p, updated_at=T0) for p in roster.presences()}
    return people, presences


@contextlib.asynccontextmanager
async def tasks(*coroutines: Any) -> AsyncIterator[None]:
    started = [asyncio.create_task(c) for c in coroutines]
    try:
        yield
    finally:
        for task in started:
            task.cancel()
        await asyncio.gather(*started, return_exceptions=True)


async def converged(leader: Roster, follower: Roster, what: str) -> None:
    await wait_until(lambda: view(follower) == view(leader), message=f"the follower to see {what}")


async def test_a_follower_keeps_the_leaders_roster_and_releases_its_own_waiters(
    pg_url: str,
) -> None:
    async with Store(pg_url) as leader_store, Store(pg_url) as follower_store:
        leader_bus, follower_bus = bus(pg_url, "leader", Epoch(1)), bus(pg_url, "follower")
        leader, follower = Roster(), Roster()
        coordinator = leading(leader, leader_store, LeaderMirror(leader_bus))
        gate = AvailabilityGate()
        view_ = FollowerPresence(
            team_id=TEAM, roster=follower, store=follower_store, bus=follower_bus, consumers=[gate]
        )
        async with tasks(leader_bus.run(), follower_bus.run(), view_.run()):
            await wait_until(lambda: leader_bus.connected and follower_bus.connected)
            await view_.rebuilt.wait()
            for user, extension in (("U1", "E1"), ("U2", "E2"), ("U3", "E3")):
                await leader_store.link(TEAM, user, extension, "manual")
            await coordinator.reload_links()
            await coordinator.on_presence(phone("E1", TelephonyStatus.CALL_CONNECTED))
            await coordinator.on_presence(phone("E2", TelephonyStatus.NO_CALL))
            await coordinator.on_presence(phone("E3", TelephonyStatus.RINGING))
            await coordinator.on_presence(phone("E4", TelephonyStatus.NO_CALL))
            await converged(leader, follower, "calls and links")
            assert availability_of(follower, "U1") is Availability.ON_CALL

            waiter = asyncio.create_task(gate.wait("U1", 60.0))
            await wait_until(lambda: gate.waiting == 1, message="the request to wait")
            await coordinator.on_presence(phone("E1", TelephonyStatus.NO_CALL))
            await wait_until(waiter.done, message="the follower's gate to release U1")
            assert availability_of(follower, "U1") is Availability.AVAILABLE

            await coordinator.on_extensions_removed(["E3"])
            await converged(leader, follower, "a deleted extension")
            assert follower.presence_of("U3") is None

            await leader_store.unlink(TEAM, "U2")
            await leader_store.link(TEAM, "U2", "E4", "manual")
            await coordinator.reload_links()
            await converged(leader, follower, "a moved link")
            assert follower.extension_of("U2") == "E4"


async def test_a_follower_rebuilds_from_the_store_at_start_and_after_a_reconnect(
    pg_url: str,
) -> None:
    async with Store(pg_url) as leader_store, Store(pg_url) as follower_store:
        # The leader's bus never runs: whatever the follower learns, it read from the store.
        silent, follower_bus = bus(pg_url, "leader", Epoch(1)), bus(pg_url, "follower")
        leader, follower = Roster(), Roster()
        coordinator = leading(leader, leader_store, LeaderMirror(silent))
        for user, extension in (("U1", "E1"), ("U2", "E2"), ("U3", "E3")):
            await leader_store.link(TEAM, user, extension, "manual")
        await coordinator.reload_links()
        for extension in ("E1", "E2", "E3"):
            await coordinator.on_presence(phone(extension, TelephonyStatus.CALL_CONNECTED))
        await coordinator.flush()
        view_ = FollowerPresence(
            team_id=TEAM, roster=follower, store=follower_store, bus=follower_bus
        )
        async with tasks(follower_bus.run(), view_.run()):
            await converged(leader, follower, "the stored state at start")

            await coordinator.on_presence(phone("E1", TelephonyStatus.NO_CALL))
            await coordinator.on_extensions_removed(["E3"])
            await leader_store.unlink(TEAM, "U2")
            await coordinator.reload_links()
            await coordinator.flush()
            assert view(follower) != view(leader)  # nothing was heard
            assert await terminate_bus_sessions(pg_url) == 1
            await converged(leader, follower, "the stored state after a reconnect")
            assert availability_of(follower, "U1") is Availability.AVAILABLE
            assert follower.extension_of("U2") is None
            assert follower.presence("E3") is None
        assert silent.queued > 0


async def collect(subscription: Subscription, count: int) -> list[AvailabilityEvent]:
    events: list[AvailabilityEvent] = []
    while len(events) < count:
        event = await subscription.next(10.0)
        assert event is not None, f"only {len(events)} of {count} events came"
        events.append(event)
    return events


async def test_a_followers_stream_gets_the_leaders_events_with_the_same_ids(
    pg_url: str,
) -> None:
    async with Store(pg_url) as leader_store, Store(pg_url) as follower_store:
        leader_bus, follower_bus = bus(pg_url, "leader", Epoch(1)), bus(pg_url, "follower")
        leader, follower = Roster(), Roster()
        mirror = LeaderMirror(leader_bus)
        feed = AvailabilityFeed(
            team_id=TEAM,
            people=PeopleView(roster=leader, slack=NoSlackPeople(), extensions=NoExtensions()),
            not_sharing=frozenset(),
            log_store=leader_store,
            on_recorded=mirror.events_recorded,
            linger=0.0,
        )
        coordinator = leading(leader, leader_store, mirror, consumers=[feed])
        follower_feed = AvailabilityFeed(
            team_id=TEAM,
            people=PeopleView(roster=follower, slack=NoSlackPeople(), extensions=NoExtensions()),
            not_sharing=frozenset(),
            log_store=follower_store,
        )
        tail = EventTail(team_id=TEAM, feed=follower_feed, store=follower_store, bus=follower_bus)
        await leader_store.append_event(TEAM, T0, "U0", {"availability": "offline"})  # history
        async with tasks(leader_bus.run(), follower_bus.run(), feed.run_writer(), tail.run()):
            await wait_until(lambda: leader_bus.connected and follower_bus.connected)
            await wait_until(lambda: tail.last_id is not None, message="the tail to start")
            await coordinator.snapshot()  # from here on, changes are news
            on_leader, on_follower = feed.subscribe(), follower_feed.subscribe()
            for user, extension in (("U1", "E1"), ("U2", "E2")):
                await leader_store.link(TEAM, user, extension, "manual")
            await coordinator.reload_links()
            for telephony in (TelephonyStatus.RINGING, TelephonyStatus.CALL_CONNECTED):
                await coordinator.on_presence(phone("E1", telephony))
                await coordinator.on_presence(phone("E2", telephony))
            await coordinator.on_presence(phone("E1", TelephonyStatus.NO_CALL))
            await feed.flush()
            assert feed.recorded == 5  # ringing and on a call for both, then U1 free again
            leader_events = await collect(on_leader, feed.recorded)
            follower_events = await collect(on_follower, feed.recorded)
            assert [(e.id, e.envelope()) for e in follower_events] == [
                (e.id, e.envelope()) for e in leader_events
            ]
            assert follower_events[-1].data["availability"] == "available"

            # A notice lost with the session: the reconnect makes the tail look again.
            (missed,) = await leader_store.append_events(
                TEAM, [(datetime.now(UTC), "U2", {"availability": "offline"})]
            )
            assert await terminate_bus_sessions(pg_url) == 2
            (late,) = await collect(on_follower, 1)
            assert late.id == missed
