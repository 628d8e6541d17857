"""Webhook endpoints and deliveries in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.store import Store
from bot.store.events import StoredEvent
from bot.store.webhooks import (
    AttemptOutcome,
    DeliveryState,
    FanOut,
    NewDelivery,
    WebhookDelivery,
    WebhookEndpoint,
)
from tests.helpers import wait_until
from tests.store_fixtures import (
    NO_POSTGRES,
    POSTGRES_ENV,
    database_url,
    postgres_admin_url,
    private_postgres,
)

__all__ = ["database_url"]  # the fixture, imported so pytest finds it here

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TEAM = "T1"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(database_url: str, clock: Clock) -> AsyncIterator[Store]:
    async with Store(database_url, clock=clock) as opened:
        yield opened


async def add(store: Store, endpoint_id: str = "wh_0000000000000001", **extra: Any) -> str:
    values: dict[str, Any] = {
        "endpoint_id": endpoint_id,
        "team_id": TEAM,
        "url": "https://example.com/hook",
        "secret": "whsec_c2VjcmV0",
        "people": None,
        "availability": None,
        "description": "",
        "created_by": "key_1",
        "max_endpoints": 50,
        **extra,
    }
    made = await store.add_webhook(**values)
    assert made is not None
    return made.id


async def record(store: Store, *people: str) -> list[NewDelivery]:
    made = []
    for user_id in people:
        event_id = await store.append_event(TEAM, T0, user_id, {"availability": "on_call"})
        made.append(NewDelivery(event_id, user_id, T0, f'{{"n":{event_id}}}'))
    return made


async def fan(store: Store, endpoint_id: str, deliveries: list[NewDelivery], **kw: Any) -> FanOut:
    """Fan out, and line the new deliveries up as the endpoint's lane then would."""
    endpoint = await store.webhook(TEAM, endpoint_id)
    assert endpoint is not None
    outcome = await store.fan_out(
        endpoint_id,
        after=endpoint.event_cursor,
        through=deliveries[-1].event_id,
        deliveries=deliveries,
        max_unfinished=kw.get("max_unfinished", 1000),
    )
    await store.line_up(endpoint_id, {d.user_id for d in deliveries})
    return outcome


async def claim(
    store: Store, delivery: WebhookDelivery, at: datetime, until: datetime
) -> WebhookDelivery | None:
    """Claim this one delivery if it is among the due ones (as a lane of one would)."""
    claimed, _ = await store.claim_deliveries(delivery.endpoint_id, at, 100, booked_until=until)
    return next((d for d in claimed if d.id == delivery.id), None)


async def finish(
    store: Store,
    delivery: WebhookDelivery,
    state: DeliveryState,
    at: datetime,
    status: int | None = 200,
    error: str | None = None,
    retry_at: datetime | None = None,
) -> bool:
    outcome = AttemptOutcome(delivery, state, status, error, retry_at)
    return await store.record_attempts(delivery.endpoint_id, [outcome], at)


async def due(store: Store, endpoint_id: str, at: datetime = T0) -> list[WebhookDelivery]:
    return await store.due_deliveries(endpoint_id, at, 100)


async def states(store: Store, endpoint_id: str) -> list[tuple[int, str, str]]:
    rows = await store.webhook_deliveries(endpoint_id, before_id=None, limit=100)
    return [(d.event_id, d.user_id, d.state.value) for d in reversed(rows)]


async def test_an_endpoint_starts_after_the_newest_event_and_the_team_has_a_bound(
    store: Store,
) -> None:
    await record(store, "U1", "U2")
    hook = await add(store, people=["U1"], availability=["available", "on_call"])
    endpoint = await store.webhook(TEAM, hook)
    assert endpoint is not None
    assert endpoint.event_cursor == 2
    assert (endpoint.people, endpoint.availability, endpoint.enabled) == (
        ("U1",),
        ("available", "on_call"),
        True,
    )
    assert endpoint.secret == "whsec_c2VjcmV0"
    assert (
        await store.add_webhook(
            endpoint_id="wh_0000000000000002",
            team_id=TEAM,
            url="https://example.com/2",
            secret="whsec_eA==",
            people=None,
            availability=None,
            description="",
            created_by="key_1",
            max_endpoints=1,
        )
        is None
    )
    assert [e.id for e in await store.webhooks(TEAM)] == [hook]
    assert await store.webhooks("T2") == []


async def test_fan_out_queues_behind_each_person_and_moves_the_cursor_once(store: Store) -> None:
    hook = await add(store)
    made = await record(store, "U1", "U2", "U1", "U1")
    results = await asyncio.gather(*(fan(store, hook, made) for _ in range(3)))
    assert sorted(results) == sorted([FanOut.ADVANCED, FanOut.MOVED, FanOut.MOVED])
    assert (await store.webhook(TEAM, hook)).event_cursor == made[-1].event_id  # type: ignore[union-attr]
    assert await states(store, hook) == [
        (made[0].event_id, "U1", "pending"),
        (made[1].event_id, "U2", "pending"),
        (made[2].event_id, "U1", "queued"),
        (made[3].event_id, "U1", "queued"),
    ]
    # A later batch queues behind what is still waiting.
    later = await record(store, "U2", "U3")
    assert await fan(store, hook, later) is FanOut.ADVANCED
    assert [s for _, _, s in await states(store, hook)][-2:] == ["queued", "pending"]
    assert {d.user_id for d in await due(store, hook)} == {"U1", "U2", "U3"}


async def test_each_person_goes_in_order_and_the_next_is_due_when_one_finishes(
    store: Store,
) -> None:
    hook = await add(store)
    made = await record(store, "U1", "U1", "U1")
    await fan(store, hook, made)
    [first] = await due(store, hook)
    assert first.event_id == made[0].event_id
    claimed = await claim(store, first, T0, T0 + timedelta(seconds=30))
    assert claimed is not None
    assert claimed.attempts == 1
    assert await claim(store, first, T0, T0 + timedelta(seconds=30)) is None
    assert await due(store, hook) == []  # booked until its next attempt, and the rest wait
    later = T0 + timedelta(seconds=1)
    await finish(store, claimed, DeliveryState.DELIVERED, later)
    [second] = await due(store, hook, later)
    assert second.event_id == made[1].event_id
    claimed = await claim(store, second, later, later + timedelta(seconds=5))
    assert claimed is not None
    retry_at = later + timedelta(seconds=5)
    await finish(store, claimed, DeliveryState.PENDING, later, 500, "answered 500", retry_at)
    assert await due(store, hook, later) == []  # its retry is not due, and the third waits
    [again] = await due(store, hook, later + timedelta(seconds=5))
    assert (again.event_id, again.attempts, again.last_status) == (made[1].event_id, 1, 500)
    assert (await store.claim_deliveries(hook, later, 5, booked_until=later))[1] == retry_at


async def test_giving_up_disables_only_an_endpoint_that_accepted_nothing_meanwhile(
    store: Store,
) -> None:
    live, dead = await add(store, "wh_000000000000000a"), await add(store, "wh_000000000000000b")
    made = await record(store, "U1", "U2", "U1")
    for hook in (live, dead):
        await fan(store, hook, made)
    for hook in (live, dead):
        for delivery in await due(store, hook):
            assert await claim(store, delivery, T0, T0) is not None
    later = T0 + timedelta(hours=27)
    [u1_live, u2_live] = sorted(await due(store, live, later), key=lambda d: d.user_id)
    await finish(store, u2_live, DeliveryState.DELIVERED, later, 204)  # someone else's got in
    assert not await finish(store, u1_live, DeliveryState.FAILED, later, 500, "answered 500")
    [u1_dead, _] = sorted(await due(store, dead, later), key=lambda d: d.user_id)
    assert await finish(store, u1_dead, DeliveryState.FAILED, later, None, "timed out")
    assert not await finish(store, u1_dead, DeliveryState.FAILED, later, None, "timed out")
    shown = {e.id: e for e in await store.webhooks(TEAM)}
    assert (shown[live].enabled, shown[dead].enabled) == (True, False)
    assert shown[dead].disabled_reason == "every attempt failed for a whole retry schedule"
    assert [e.id for e in await store.enabled_webhooks(TEAM)] == [live]
    # The person's next change is due at once after the one given up.
    assert [(e, u, s) for e, u, s in await states(store, live) if u == "U1"] == [
        (made[0].event_id, "U1", "failed"),
        (made[2].event_id, "U1", "pending"),
    ]


async def test_retry_puts_a_finished_delivery_back_first_in_its_persons_line(
    store: Store, clock: Clock
) -> None:
    hook = await add(store)
    made = await record(store, "U1", "U1")
    await fan(store, hook, made)
    [first] = await due(store, hook)
    claimed = await claim(store, first, T0, T0)
    assert claimed is not None
    await finish(store, claimed, DeliveryState.FAILED, T0, 500, "answered 500")
    later = T0 + timedelta(minutes=1)
    retried = await store.retry_delivery(hook, made[0].event_id, later)
    assert retried is not None
    assert (retried.state, retried.attempts) == (DeliveryState.QUEUED, 0)  # the second is pending
    [second] = await due(store, hook, later)
    claimed = await claim(store, second, later, later)
    assert claimed is not None
    await finish(store, claimed, DeliveryState.DELIVERED, later)
    [back] = await due(store, hook, later)
    assert (back.event_id, back.state) == (made[0].event_id, DeliveryState.PENDING)
    assert await store.retry_delivery(hook, 99_999, later) is None
    assert await store.retry_delivery("wh_ffffffffffffffff", made[0].event_id, later) is None


async def test_a_backlog_past_its_bound_disables_the_endpoint(store: Store) -> None:
    hook = await add(store)
    assert (
        await fan(store, hook, await record(store, "U1", "U2"), max_unfinished=3) is FanOut.ADVANCED
    )
    more = await record(store, "U3", "U4")
    assert await fan(store, hook, more, max_unfinished=3) is FanOut.DISABLED
    endpoint = await store.webhook(TEAM, hook)
    assert endpoint is not None
    assert (endpoint.enabled, endpoint.disabled_reason) == (
        False,
        "more than 3 deliveries were waiting",
    )
    assert await store.unfinished_deliveries(hook) == 2


async def test_enabling_again_starts_from_now_with_a_fresh_schedule(
    store: Store, clock: Clock
) -> None:
    hook = await add(store)
    made = await record(store, "U1")
    await fan(store, hook, made)
    [delivery] = await due(store, hook)
    claimed = await claim(store, delivery, T0, T0 + timedelta(hours=5))
    assert claimed is not None
    assert await store.disable_webhook(hook, "the receiver answered 410 Gone")
    assert not await store.disable_webhook(hook, "again")
    missed = await record(store, "U2")
    clock.now = T0 + timedelta(hours=1)
    enabled = await store.update_webhook(TEAM, hook, enabled=True, description="back")
    assert enabled is not None
    assert (enabled.enabled, enabled.disabled_reason, enabled.description) == (True, None, "back")
    assert enabled.event_cursor == missed[0].event_id  # what happened while off is not sent
    [fresh] = await due(store, hook, clock.now)
    assert (fresh.event_id, fresh.attempts) == (made[0].event_id, 0)
    off = await store.update_webhook(TEAM, hook, enabled=False)
    assert off is not None
    assert (off.enabled, off.disabled_reason) == (False, "disabled through the API")
    changed = await store.update_webhook(
        TEAM, hook, url="https://example.org/", people=["U9"], availability=None
    )
    assert changed is not None
    assert (changed.url, changed.people, changed.availability) == (
        "https://example.org/",
        ("U9",),
        None,
    )
    assert await store.update_webhook(TEAM, "wh_ffffffffffffffff", enabled=True) is None
    assert await store.update_webhook("T2", hook, description="x") is None


async def test_deleting_an_endpoint_deletes_its_deliveries(store: Store) -> None:
    hook = await add(store)
    await fan(store, hook, await record(store, "U1", "U1"))
    assert await store.delete_webhook(TEAM, hook)
    assert not await store.delete_webhook(TEAM, hook)
    assert await store.unfinished_deliveries(hook) == 0
    assert await store.webhook_deliveries(hook, before_id=None, limit=10) == []


async def test_deliveries_page_newest_first_and_finished_ones_are_pruned(store: Store) -> None:
    hook = await add(store)
    made = await record(store, "U1", "U2", "U3")
    await fan(store, hook, made)
    page = await store.webhook_deliveries(hook, before_id=None, limit=2)
    assert [d.event_id for d in page] == [made[2].event_id, made[1].event_id]
    rest = await store.webhook_deliveries(hook, before_id=page[-1].id, limit=2)
    assert [d.event_id for d in rest] == [made[0].event_id]
    for delivery in await due(store, hook):
        claimed = await claim(store, delivery, T0, T0)
        assert claimed is not None
        if delivery.user_id != "U3":
            await finish(store, claimed, DeliveryState.DELIVERED, T0)
    assert await store.prune_webhook_deliveries(T0, keep_per_endpoint=2) == 0
    assert await store.prune_webhook_deliveries(T0, keep_per_endpoint=1) == 1  # the older one
    assert await store.prune_webhook_deliveries(T0 + timedelta(days=3), keep_per_endpoint=9) == 1
    assert [d.user_id for d in await store.webhook_deliveries(hook, before_id=None, limit=9)] == [
        "U3"
    ]  # an unfinished delivery is never pruned


async def test_the_event_log_keeps_what_an_enabled_endpoint_has_not_taken(store: Store) -> None:
    old = await record(store, "U1")
    hook = await add(store)
    waiting = await record(store, "U1", "U2", "U3")
    hour_later = T0 + timedelta(hours=2)
    assert await store.prune_events(hour_later, keep_at_most=1_000) == 1  # only what it has taken
    assert [e.id for e in await store.events_after(TEAM, 0, 10)] == [w.event_id for w in waiting]
    await fan(store, hook, waiting[:1])
    assert await store.prune_events(hour_later, keep_at_most=1_000) == 1
    await store.disable_webhook(hook, "off")
    # A disabled endpoint holds nothing back; the newest row always stays (ids never reused).
    assert await store.prune_events(hour_later, keep_at_most=1_000) == 1
    assert [e.id for e in await store.events_after(TEAM, 0, 10)] == [waiting[2].event_id]
    assert old[0].event_id < waiting[0].event_id


async def test_the_log_s_hard_bound_wins_over_a_lagging_endpoint(store: Store) -> None:
    await add(store)
    made = await record(store, "U1", "U2", "U3", "U4")
    # Nothing is old, and the endpoint has taken nothing, yet the log keeps at most two.
    assert await store.prune_events(T0 - timedelta(hours=1), keep_at_most=2) == 2
    assert [e.id for e in await store.events_after(TEAM, 0, 10)] == [m.event_id for m in made[2:]]


async def test_racing_claims_take_each_delivery_once_and_say_what_is_next(store: Store) -> None:
    hook = await add(store)
    made = await record(store, *(f"U{n}" for n in range(12)))
    await fan(store, hook, made)
    booked = T0 + timedelta(seconds=11)
    results = await asyncio.gather(
        *(store.claim_deliveries(hook, T0, 5, booked_until=booked) for _ in range(4))
    )
    taken = [d.event_id for claimed, _ in results for d in claimed]
    assert sorted(taken) == [m.event_id for m in made]  # twelve, each once
    assert all(d.attempts == 1 for claimed, _ in results for d in claimed)
    assert (await store.claim_deliveries(hook, T0, 5, booked_until=booked)) == ([], booked)


def every_change(endpoint: WebhookEndpoint, events: Sequence[StoredEvent]) -> list[NewDelivery]:
    return [
        NewDelivery(e.id, e.user_id, e.at, f'{{"n":{e.id}}}')
        for e in events
        if endpoint.people is None or e.user_id in endpoint.people
    ]


async def test_a_round_fans_out_to_every_endpoint_from_its_own_cursor(store: Store) -> None:
    early = await add(store, "wh_000000000000000a")
    made = await record(store, "U1", "U2")
    late = await add(store, "wh_000000000000000b", people=["U1"])
    off = await add(store, "wh_000000000000000c")
    await store.disable_webhook(off, "off")
    made += await record(store, "U1", "U2", "U1")
    first = await store.fan_out_round(TEAM, limit=4, deliveries=every_change, max_unfinished=1000)
    assert [e.id for e in first.endpoints] == [early, late]
    assert first.outcomes == {early: FanOut.ADVANCED, late: FanOut.ADVANCED}
    assert first.queued_for == {early: {"U1", "U2"}, late: {"U1"}}
    assert first.full  # four read of five
    second = await store.fan_out_round(TEAM, limit=4, deliveries=every_change, max_unfinished=1000)
    assert second.outcomes == {early: FanOut.ADVANCED, late: FanOut.ADVANCED}
    assert second.queued_for == {early: {"U1"}, late: {"U1"}}
    assert not second.full
    ids = [m.event_id for m in made]
    # A round only queues: who is next in each person's line is for the endpoint's lane.
    assert {s for _, _, s in await states(store, early)} == {"queued"}
    assert await due(store, early) == []
    for hook, people in first.queued_for.items():
        await store.line_up(hook, people | second.queued_for[hook])
    assert await states(store, early) == [
        (ids[0], "U1", "pending"),
        (ids[1], "U2", "pending"),
        (ids[2], "U1", "queued"),
        (ids[3], "U2", "queued"),
        (ids[4], "U1", "queued"),
    ]
    assert await states(store, late) == [(ids[2], "U1", "pending"), (ids[4], "U1", "queued")]
    assert await states(store, off) == []
    cursors = {e.id: e.event_cursor for e in await store.webhooks(TEAM)}
    assert (cursors[early], cursors[late]) == (ids[-1], ids[-1])
    # Nothing new: nothing queued, nobody woken.
    third = await store.fan_out_round(TEAM, limit=4, deliveries=every_change, max_unfinished=1000)
    assert (third.outcomes, third.full) == ({}, False)
    bounded = await record(store, "U3", "U4")
    over = await store.fan_out_round(TEAM, limit=4, deliveries=every_change, max_unfinished=6)
    assert over.outcomes == {early: FanOut.DISABLED}  # the late one gets none of these
    assert [e.id for e in await store.enabled_webhooks(TEAM)] == [late]
    assert await store.unfinished_deliveries(early) == 5
    assert bounded


async def test_recording_lining_up_and_claiming_share_one_transaction(store: Store) -> None:
    """A lane's batch: what finished is recorded, the person's next delivery and the people a
    round queued for are put in line, and what is then due is claimed, all in one go."""
    hook = await add(store)
    made = await record(store, "U1", "U1", "U2")
    await fan(store, hook, made[:2])
    booked = T0 + timedelta(seconds=11)
    start = await store.record_and_claim(hook, [], T0, limit=1, booked_until=booked)
    assert [d.event_id for d in start.claimed] == [made[0].event_id]
    assert start.next_due is None  # the limit was reached: no room to wait for the next
    [taken] = start.claimed
    endpoint = await store.webhook(TEAM, hook)
    assert endpoint is not None
    queued = await store.fan_out(
        hook,
        after=endpoint.event_cursor,
        through=made[2].event_id,
        deliveries=made[2:],
        max_unfinished=1000,
    )
    assert queued is FanOut.ADVANCED
    later = T0 + timedelta(seconds=1)
    settled = await store.record_and_claim(
        hook,
        [AttemptOutcome(taken, DeliveryState.DELIVERED, 200, None)],
        later,
        limit=5,
        booked_until=booked,
        waiting={"U2"},
    )
    # U1's second change follows at once; U2's, queued by the round, is in line and taken too.
    assert sorted(d.event_id for d in settled.claimed) == [made[1].event_id, made[2].event_id]
    assert (settled.spent, settled.gone, settled.next_due) == (False, False, None)
    assert all(d.attempts == 1 for d in settled.claimed)
    gone = await store.record_and_claim(
        hook,
        [AttemptOutcome(d, DeliveryState.PENDING, 410, "gone", later) for d in settled.claimed],
        later,
        gone="the receiver answered 410 Gone",
        limit=5,
        booked_until=booked,
    )
    assert (gone.gone, gone.claimed) == (True, [])
    endpoint = await store.webhook(TEAM, hook)
    assert endpoint is not None
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "the receiver answered 410 Gone")
    assert await due(store, hook, later) != []  # kept waiting for the endpoint to come back


async def test_a_lane_starting_lines_up_what_a_crash_left_queued(store: Store) -> None:
    """Deliveries a round queued just before the process died, which no lane remembers, are
    put in line by the next lane's first batch; those behind a pending one stay queued."""
    hook = await add(store)
    made = await record(store, "U1", "U2", "U1", "U3")
    await fan(store, hook, made[:1])
    endpoint = await store.webhook(TEAM, hook)
    assert endpoint is not None
    await store.fan_out(
        hook,
        after=endpoint.event_cursor,
        through=made[-1].event_id,
        deliveries=made[1:],
        max_unfinished=1000,
    )
    first = await store.record_and_claim(
        hook, [], T0, limit=10, booked_until=T0 + timedelta(seconds=11), waiting=None
    )
    assert sorted(d.event_id for d in first.claimed) == sorted(
        m.event_id for m in (made[0], made[1], made[3])
    )
    assert await states(store, hook) == [
        (made[0].event_id, "U1", "pending"),
        (made[1].event_id, "U2", "pending"),
        (made[2].event_id, "U1", "queued"),
        (made[3].event_id, "U3", "pending"),
    ]


async def test_a_round_counts_a_backlog_only_when_its_bound_comes_near_the_limit(
    store: Store,
) -> None:
    hook = await add(store)
    await record(store, "U1", "U2")
    first = await store.fan_out_round(TEAM, limit=10, deliveries=every_change, max_unfinished=3)
    assert (first.outcomes, first.at_most) == ({hook: FanOut.ADVANCED}, {hook: 2})
    # A bound carried over that stays clear of the limit is trusted: a stale low one lets one
    # more round through, a recount later catches it.
    await record(store, "U3")
    trusted = await store.fan_out_round(
        TEAM, limit=10, deliveries=every_change, max_unfinished=3, at_most={hook: 0}
    )
    assert (trusted.outcomes, trusted.at_most) == ({hook: FanOut.ADVANCED}, {hook: 1})
    # One that would pass the limit is checked against the real count, which disables it.
    await record(store, "U4")
    counted = await store.fan_out_round(
        TEAM, limit=10, deliveries=every_change, max_unfinished=3, at_most={hook: 3}
    )
    assert counted.outcomes == {hook: FanOut.DISABLED}
    assert await store.unfinished_deliveries(hook) == 3


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason=NO_POSTGRES)
async def test_deleting_an_endpoint_while_its_lane_records_an_attempt_does_not_deadlock(
    clock: Clock,
) -> None:
    """Recording locks deliveries and then the endpoint; deleting locks the endpoint and then
    its deliveries. Another session holds a delivery so that both wait on it, the recording
    first, as they met in the benchmark: both must then finish, neither be chosen to die."""
    async with (
        private_postgres(postgres_admin_url()) as url,
        Store(url, clock=clock) as store,
    ):
        hook = await add(store)
        await fan(store, hook, await record(store, "U1", "U2"))
        claimed, _ = await store.claim_deliveries(
            hook, T0, 2, booked_until=T0 + timedelta(seconds=11)
        )
        assert len(claimed) == 2
        outcomes = [AttemptOutcome(d, DeliveryState.DELIVERED, 200, None) for d in claimed]
        holder = create_async_engine(url)
        try:

            async def waiting(count: int) -> bool:
                # Its own transaction each time: within one, pg_stat_activity does not change.
                async with holder.connect() as watcher:
                    found = await watcher.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE usename = current_user AND wait_event_type = 'Lock'"
                        )
                    )
                return found == count

            async with holder.connect() as conn:
                held = await conn.begin()
                await conn.execute(
                    text("SELECT id FROM rcstatus_webhook_deliveries WHERE id = :id FOR UPDATE"),
                    {"id": claimed[0].id},
                )
                recording = asyncio.create_task(store.record_attempts(hook, outcomes, T0))
                await wait_until(lambda: waiting(1), message="the recording waiting")
                deleting = asyncio.create_task(store.delete_webhook(TEAM, hook))
                await wait_until(lambda: waiting(2), message="the deletion waiting too")
                await held.commit()
            recorded, deleted = await asyncio.gather(recording, deleting, return_exceptions=True)
        finally:
            await holder.dispose()
        assert recorded is False  # recorded, and nothing disabled
        assert deleted is True
        assert await store.webhook(TEAM, hook) is None
        assert await store.webhook_deliveries(hook, before_id=None, limit=10) == []
