"""The DM outbox in the store (both databases), and the Slack clients' retries in the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError

from bot.slack.clients import bot_client, profile_client
from bot.slack.messages import DirectMessages, DmOutcome
from bot.store import Store
from tests.sim.slack_helpers import running_sim
from tests.store_fixtures import database_url

__all__ = ["database_url"]  # the fixture, imported so pytest finds it here

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "✅ <@U2> is free now"}}]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with Store(database_url, clock=lambda: T0) as opened:
        yield opened


async def _queued_watch(store: Store, target: str = "U2") -> int:
    watch = await store.add_watch("T1", "U1", target, T0 + timedelta(hours=1))
    fired = await store.fire_watch(
        watch.id, text="free", blocks=BLOCKS, now=T0, give_up_at=T0 + timedelta(minutes=30)
    )
    assert fired
    return watch.id


async def test_one_sender_at_a_time_and_the_watch_fires_only_when_sent(store: Store) -> None:
    watch_id = await _queued_watch(store)
    assert (await store.watch(watch_id)).state == "sending"  # type: ignore[union-attr]
    assert await store.watches_on("T1", "U2") == []  # never queued twice
    [dm] = await store.due_dms("T1", T0)
    assert (dm.user_id, dm.text, dm.blocks, dm.watch_id, dm.attempts) == (
        "U1",
        "free",
        BLOCKS,
        watch_id,
        0,
    )

    lease = T0 + timedelta(minutes=2)
    claims = await asyncio.gather(*(store.claim_dm(dm.id, T0, lease) for _ in range(4)))
    held = [claim for claim in claims if claim is not None]
    assert len(held) == 1  # however many replicas race, one sends
    assert held[0].attempts == 1
    assert await store.due_dms("T1", T0 + timedelta(minutes=1)) == []  # leased
    assert await store.next_dm_due("T1") == lease

    retry = T0 + timedelta(seconds=5)
    await store.dm_retry_at(dm.id, retry, "internal_error")
    [again] = await store.due_dms("T1", retry)
    assert (again.attempts, again.last_error) == (1, "internal_error")
    assert (await store.watch(watch_id)).state == "sending"  # type: ignore[union-attr]

    await store.dm_sent(dm.id, retry)
    watch = await store.watch(watch_id)
    assert watch is not None
    assert (watch.state, watch.fired_at) == ("fired", retry)
    assert await store.pending_dm_count("T1") == 0
    assert await store.next_dm_due("T1") is None


async def test_a_dropped_dm_expires_its_watch_and_a_cancelled_watch_never_fires(
    store: Store,
) -> None:
    watch_id = await _queued_watch(store)
    [dm] = await store.due_dms("T1", T0)
    await store.dm_dropped(dm.id, T0)
    dropped = await store.watch(watch_id)
    assert dropped is not None
    assert dropped.state == "expired"
    assert await store.pending_dm_count("T1") == 0

    cancelled = await store.add_watch("T1", "U1", "U3", T0 + timedelta(hours=1))
    assert await store.cancel_watch("T1", "U1", "U3")
    assert not await store.fire_watch(
        cancelled.id, text="free", blocks=None, now=T0, give_up_at=T0 + timedelta(minutes=30)
    )
    assert await store.pending_dm_count("T1") == 0


async def test_the_outbox_is_bounded(store: Store) -> None:
    give_up = T0 + timedelta(minutes=30)
    assert await store.enqueue_dm("T1", "U1", "one", now=T0, give_up_at=give_up, limit=2)
    assert await store.enqueue_dm("T1", "U1", "two", now=T0, give_up_at=give_up, limit=2)
    assert not await store.enqueue_dm("T1", "U1", "three", now=T0, give_up_at=give_up, limit=2)
    watch = await store.add_watch("T1", "U1", "U2", T0 + timedelta(hours=1))
    assert not await store.fire_watch(
        watch.id, text="free", blocks=None, now=T0, give_up_at=give_up, limit=2
    )
    # A watch whose DM found no room stays active, to fire when there is.
    assert (await store.watch(watch.id)).state == "active"  # type: ignore[union-attr]
    assert [dm.text for dm in await store.due_dms("T1", T0)] == ["one", "two"]
    assert await store.enqueue_dm("T2", "U1", "elsewhere", now=T0, give_up_at=give_up, limit=2)


async def test_a_short_429_is_waited_out_a_long_one_is_left_to_the_outbox() -> None:
    async with running_sim() as sim, aiohttp.ClientSession() as http:
        alice = next(u["id"] for u in sim.users() if not u["is_admin"])
        messages = DirectMessages(bot_client(sim.url + "/api/", http, token=sim.bot_token))

        sim.inject_fault("chat.postMessage", 429, count=1, retry_after=1)
        waited = await messages.send(alice, "after a short wait")
        sim.inject_fault("chat.postMessage", 429, count=1, retry_after=60)
        left = await messages.send(alice, "not now")

        assert waited.outcome is DmOutcome.SENT
        assert (left.outcome, left.error, left.retry_after) == (DmOutcome.RETRY, "ratelimited", 60)
        assert sim.stats()["calls"]["chat.postMessage"] == 3  # 429 + retry, then one 429 only
        assert [m["text"] for m in sim.messages(alice, "dm")] == ["after a short wait"]


async def test_profile_writes_get_no_hidden_retry() -> None:
    """The status scheduler owns users.profile.set's 429s: the client must hand them back."""
    async with running_sim() as sim, aiohttp.ClientSession() as http:
        alice = next(u["id"] for u in sim.users() if not u["is_admin"])
        token = sim.grant_user_token(alice)
        client = profile_client(sim.url + "/api/", http)
        sim.inject_fault("users.profile.set", 429, count=1, retry_after=1)
        with pytest.raises(SlackApiError) as caught:
            await client.users_profile_set(token=token, profile={"status_text": "On a call"})
        assert caught.value.response.status_code == 429
        assert sim.stats()["calls"]["users.profile.set"] == 1
