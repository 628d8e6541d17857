"""The leader lease on PostgreSQL: one holder, takeover only after expiry, stale epochs fenced."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from bot.config import Settings
from bot.doctor.database import check_database
from bot.leader import LeadershipLost, Lease, fenced
from bot.store import Store
from tests.helpers import wait_until
from tests.store_fixtures import NO_POSTGRES, POSTGRES_ENV, postgres_admin_url, private_postgres

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason=NO_POSTGRES),
]


class FakeClock:
    """A monotonic clock the test moves: the lease's own sense of time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    async with private_postgres(postgres_admin_url()) as url:
        store = Store(url)
        await store.open()
        try:
            yield store
        finally:
            await store.close()


async def _expired(candidate: Lease) -> bool:
    holder = await candidate.holder()
    return holder is not None and holder.expired


async def test_one_replica_leads_and_another_takes_over_only_after_expiry(store: Store) -> None:
    first = Lease(store.engine, "a", duration=1.0)
    second = Lease(store.engine, "b", duration=1.0)
    term = await first.try_acquire()
    assert term is not None
    assert term.epoch == 1
    assert term.holder == "a"
    assert first.valid()
    # Held: the other replica cannot take it, however often it asks.
    assert await second.try_acquire() is None
    holder = await second.holder()
    assert holder is not None
    assert (holder.holder, holder.epoch) == ("a", 1)

    # Not renewed: once the database's clock passes the expiry, the next epoch is the other's.
    await wait_until(lambda: _expired(second), timeout=5, message="the lease to expire")
    taken = await second.try_acquire()
    assert taken is not None
    assert taken.epoch == 2
    # The deposed leader learns it at its next renewal.
    assert await first.renew() is False


async def test_renewal_extends_the_lease_and_release_hands_it_over_at_once(store: Store) -> None:
    first = Lease(store.engine, "a", duration=30.0)
    second = Lease(store.engine, "b", duration=30.0)
    assert await first.try_acquire() is not None
    before = await first.holder()
    assert await first.renew()
    after = await first.holder()
    assert before is not None
    assert after is not None
    assert after.expires_at > before.expires_at
    assert await second.try_acquire() is None
    await first.release()
    assert not first.valid()
    term = await second.try_acquire()
    assert term is not None
    assert term.epoch == 2


async def test_the_leader_counts_its_lease_valid_only_by_its_own_clock(store: Store) -> None:
    clock = FakeClock()
    leader = Lease(store.engine, "a", duration=10.0, clock=clock)
    assert await leader.try_acquire() is not None
    leader.check()
    # Paused for the lease less its margin: not sure any more, though nobody took over.
    clock.now += 10.0 - leader.margin
    assert not leader.valid()
    with pytest.raises(LeadershipLost):
        leader.check()


async def test_a_deposed_leaders_writes_are_refused_by_the_store(store: Store) -> None:
    first = Lease(store.engine, "a", duration=0.5)
    second = Lease(store.engine, "b", duration=30.0)
    old = await first.try_acquire()
    assert old is not None
    with fenced(old, first):
        await store.update_preferences("T1", "U1", call_text="Dialled in")
    await wait_until(lambda: _expired(second), timeout=5, message="the lease to expire")
    assert await second.try_acquire() is not None
    with fenced(old, first), pytest.raises(LeadershipLost):
        await store.update_preferences("T1", "U1", call_text="Stale")
    # Outside the leader's tasks (a person's own command) nothing is fenced.
    await store.update_preferences("T1", "U2", call_text="Mine")
    assert (await store.preferences("T1", "U1")).call_text == "Dialled in"
    assert (await store.preferences("T1", "U2")).call_text == "Mine"


async def test_a_takeover_waits_for_the_old_leaders_open_write(store: Store) -> None:
    """A write that passed the fence lands before the next epoch begins, never after it."""
    first = Lease(store.engine, "a", duration=0.3)
    second = Lease(store.engine, "b", duration=30.0)
    old = await first.try_acquire()
    assert old is not None

    async def waiting_on_a_lock() -> bool:
        async with store.engine.connect() as conn:
            waiting = await conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%rcstatus_leader_lease%FOR UPDATE'"
                )
            )
            return bool(waiting.scalar_one())

    with fenced(old, first):
        async with store._transaction("a slow write") as conn:
            await wait_until(lambda: _expired(second), timeout=5, message="the lease to expire")
            takeover = asyncio.create_task(second.try_acquire())
            await wait_until(waiting_on_a_lock, timeout=5, message="the takeover to wait")
            assert not takeover.done()
            await conn.execute(text("SELECT 1"))
    term = await takeover
    assert term is not None
    assert term.epoch == 2


async def test_the_leader_renews_while_its_own_writes_stay_open(store: Store) -> None:
    """Under load the leader's fenced transactions overlap without a pause; its renewal must not
    wait for them, or a busy leader steps down (seen under the webhook benchmark)."""
    leader = Lease(store.engine, "a", duration=30.0)
    term = await leader.try_acquire()
    assert term is not None
    with fenced(term, leader):
        async with store._transaction("a write held open") as conn:
            async with asyncio.timeout(5.0):
                assert await leader.renew()
            await conn.execute(text("SELECT 1"))


async def test_doctor_says_who_leads_and_since_when(store: Store) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    settings = Settings.from_env({"DATABASE_URL": url}, env_file=None)
    before = await check_database(settings)
    assert any("no replica has led yet" in f.what for f in before.section.findings)
    leader = Lease(store.engine, "replica-a", duration=30.0)
    term = await leader.try_acquire()
    assert term is not None
    found = [f.what for f in (await check_database(settings)).section.findings]
    assert any("role leader: replica replica-a, epoch 1, leader_since" in what for what in found), (
        found
    )
    await leader.release()
    found = [f.what for f in (await check_database(settings)).section.findings]
    assert any("no replica leads now" in what for what in found), found
