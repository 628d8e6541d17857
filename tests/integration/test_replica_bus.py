"""The replica bus on a real PostgreSQL: who hears whom, batching, reconnects, bad payloads."""

from __future__ import annotations

import math

import asyncpg
from sqlalchemy import make_url

from bot.replicas.bus import PAYLOAD_LIMIT, channel_for
from tests.helpers import wait_until
from tests.integration.replica_fixtures import (
    Epoch,
    Heard,
    bus,
    needs_postgres,
    pg_url,
    running,
    terminate_bus_sessions,
)
from tests.store_fixtures import postgres_admin_url, private_postgres

__all__ = ["pg_url"]  # the fixture, imported so pytest finds it here

pytestmark = list(needs_postgres)


async def raw_connection(url: str) -> asyncpg.Connection:
    """A plain asyncpg session as the URL's role, to watch or forge what travels."""
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )


async def test_replicas_on_one_schema_hear_each_other_and_not_themselves(pg_url: str) -> None:
    leader, follower = bus(pg_url, "leader", Epoch(1)), bus(pg_url, "follower")
    at_leader, at_follower = Heard(), Heard()
    leader.subscribe("note", at_leader)
    follower.subscribe("note", at_follower)
    async with running(leader, follower):
        leader.publish("note", {"n": 1})
        await wait_until(lambda: at_follower.bodies == [{"n": 1}], message="the follower")
        follower.publish("note", {"n": 2})
        await wait_until(lambda: at_leader.messages, message="the leader")
    assert at_leader.bodies == [{"n": 2}]  # its own message came back before this one, unheard
    ((_, envelope),) = at_follower.messages
    assert (envelope.topic, envelope.sender, envelope.epoch) == ("note", "leader", 1)
    assert at_leader.messages[0][1].epoch is None


async def test_replicas_of_another_schema_are_never_heard(pg_url: str) -> None:
    mine, heard = bus(pg_url, "a"), Heard()
    mine.subscribe("note", heard)
    sender_here = bus(pg_url, "b")
    async with private_postgres(postgres_admin_url()) as other_url:
        elsewhere = bus(other_url, "c")
        async with running(mine, sender_here, elsewhere):
            elsewhere.publish("note", "from another deployment")
            sender_here.publish("note", "from this one")
            await wait_until(lambda: heard.messages, message="this deployment's message")
    assert heard.bodies == ["from this one"]


async def test_thousands_of_messages_leave_in_few_notifies_under_the_limit(pg_url: str) -> None:
    sender, receiver, heard = bus(pg_url, "leader", Epoch(3)), bus(pg_url, "follower"), Heard()
    receiver.subscribe("presence", heard)
    watcher = await raw_connection(pg_url)
    sizes: list[int] = []
    schema = await watcher.fetchval("SELECT current_schema()")
    await watcher.add_listener(
        channel_for(schema), lambda *args: sizes.append(len(args[3].encode()))
    )
    # About the size of a presence on the wire.
    messages = [
        [f"ext-{i:06d}", 1_764_000_000_000_000 + i, "Available", "NoCall"] * 3 for i in range(5000)
    ]
    try:
        async with running(sender, receiver):
            for message in messages:
                sender.publish("presence", message)
            await wait_until(lambda: len(heard.messages) == 5000, message="all 5,000 messages")
    finally:
        await watcher.close()
    assert heard.bodies == messages
    total = sum(sizes)
    assert sender.stats.sent_notifies == len(sizes)
    assert len(sizes) <= math.ceil(total / (PAYLOAD_LIMIT - 500))
    assert max(sizes) <= PAYLOAD_LIMIT


async def test_a_lost_session_reconnects_and_tells_its_listeners(pg_url: str) -> None:
    leader, follower, heard = bus(pg_url, "leader", Epoch(1)), bus(pg_url, "follower"), Heard()
    follower.subscribe("note", heard)
    connects = 0

    async def on_connected() -> None:
        nonlocal connects
        connects += 1

    follower.on_connected(on_connected)
    async with running(leader, follower):
        await wait_until(lambda: connects == 1, message="the first connect's callback")
        assert await terminate_bus_sessions(pg_url) == 2
        await wait_until(
            lambda: connects == 2 and leader.connected and follower.connected,
            message="both buses back, the follower re-reading",
        )
        leader.publish("note", "after the restart")
        await wait_until(lambda: heard.bodies == ["after the restart"], message="the message")
    assert follower.stats.connects == 2


async def test_malformed_payloads_are_dropped_and_the_next_message_still_arrives(
    pg_url: str,
) -> None:
    receiver, heard = bus(pg_url, "follower"), Heard()
    receiver.subscribe("note", heard)
    forger = await raw_connection(pg_url)
    try:
        channel = channel_for(await forger.fetchval("SELECT current_schema()"))
        async with running(receiver):
            for payload in (
                "not json",
                "[1, 2]",
                '{"v":1,"s":"x","e":"one","m":[]}',
                '{"v":1,"s":"x","e":null,"m":[[1, 2]]}',
                '{"v":99,"s":"x","e":null,"m":[]}',
            ):
                await forger.execute("SELECT pg_notify($1, $2)", channel, payload)
            await forger.execute(
                "SELECT pg_notify($1, $2)", channel, '{"v":1,"s":"x","e":null,"m":[["note",7]]}'
            )
            await wait_until(lambda: heard.bodies == [7], message="the good message")
    finally:
        await forger.close()
    assert receiver.stats.malformed == 5


async def test_a_deposed_leaders_late_messages_are_ignored(pg_url: str) -> None:
    old, new, follower = (
        bus(pg_url, "old", Epoch(4)),
        bus(pg_url, "new", Epoch(5)),
        bus(pg_url, "f"),
    )
    heard = Heard()
    follower.subscribe("note", heard)
    async with running(old, new, follower):
        new.publish("note", "the new leader's")
        await wait_until(lambda: heard.messages, message="the new leader's message")
        old.publish("note", "the old leader's, late")
        await wait_until(lambda: follower.stats.stale == 1, message="the late message, refused")
        new.publish("note", "the new leader's again")
        await wait_until(lambda: len(heard.messages) == 2, message="the next message")
    assert heard.bodies == ["the new leader's", "the new leader's again"]
    assert follower.newest_epoch == 5


async def test_a_state_that_repeats_arrives_every_time(pg_url: str) -> None:
    sender, receiver, heard = bus(pg_url, "leader"), bus(pg_url, "follower"), Heard()
    receiver.subscribe("presence", heard)
    # Ringing, answered, ringing again: in one round of sending, the first and the last
    # batches would be the same text, which PostgreSQL would deliver once.
    ringing, on_call = (
        {"state": "ringing", "pad": "x" * 1000},
        {"state": "on_call", "pad": "x" * 1000},
    )
    states = ([ringing] * 60 + [on_call] * 60) * 3
    async with running(sender, receiver):
        for state in states:
            sender.publish("presence", state)
        await wait_until(lambda: len(heard.messages) == len(states), message="every state")
    assert heard.bodies == states
