"""What travels between replicas, and a bus that cannot reach its server."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.presence import (
    Availability,
    CallDirection,
    CallParty,
    DndStatus,
    MeetingStatus,
    Presence,
    PresenceStatus,
    TelephonyStatus,
)
from bot.replicas.bus import ReplicaBus
from bot.replicas.mirror import presence_from_wire, presence_wire
from bot.roster import Roster
from tests.helpers import wait_until

T0 = datetime(2026, 3, 2, 9, 30, 0, 123457, tzinfo=UTC)

ON_A_CALL = Presence(
    extension_id="1001",
    availability_since=T0,
    updated_at=T0 + timedelta(seconds=3, microseconds=1),
    presence_status=PresenceStatus.BUSY,
    user_status=PresenceStatus.AVAILABLE,
    telephony_status=TelephonyStatus.CALL_CONNECTED,
    aggregated_telephony_status=TelephonyStatus.CALL_CONNECTED,
    dnd_status=DndStatus.TAKE_ALL_CALLS,
    dnd_status_personal=DndStatus.TAKE_ALL_CALLS,
    meeting_status=MeetingStatus.DISCONNECTED,
    allow_see_my_presence=True,
    active_calls=1,
    call_direction=CallDirection.INBOUND,
    call_party=CallParty.EXTERNAL,
    on_call_since=T0,
)
NEVER_REPORTED = Presence(extension_id="1002", availability_since=T0, updated_at=T0)


@pytest.mark.parametrize("presence", [ON_A_CALL, NEVER_REPORTED])
def test_a_presence_crosses_the_wire_exactly(presence: Presence) -> None:
    assert presence_from_wire(presence_wire(presence)) == presence


def test_a_presence_on_the_wire_is_small() -> None:
    assert len(json.dumps(presence_wire(ON_A_CALL), separators=(",", ":"))) < 250


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda w: w[:-1], "every field"),
        (lambda w: [7, *w[1:]], "extension_id"),
        (lambda w: [w[0], True, *w[2:]], "availability_since"),
        (lambda w: [w[0], "2026-03-02", *w[2:]], "availability_since"),
        (lambda w: [w[0], None, *w[2:]], "availability_since"),
        (lambda w: [w[0], 10**30, *w[2:]], "availability_since"),
    ],
)
def test_a_bad_presence_names_the_field_and_never_the_value(change: object, field: str) -> None:
    assert callable(change)
    with pytest.raises(ValueError, match=field) as raised:
        presence_from_wire(change(presence_wire(ON_A_CALL)))
    assert "2026-03-02" not in str(raised.value)


def test_an_unknown_status_is_refused() -> None:
    wire = presence_wire(ON_A_CALL)
    wire = ["Sleeping" if value == "Busy" else value for value in wire]
    with pytest.raises(ValueError, match="status") as raised:
        presence_from_wire(wire)
    assert "Sleeping" not in str(raised.value)


def test_a_follower_adopts_the_leaders_word_and_tells_only_a_moved_person() -> None:
    roster = Roster()
    roster.set_links({"U1": "1001"}, at=T0)
    change = roster.adopt(ON_A_CALL)
    assert change is not None
    assert (change.user_id, change.old, change.new) == ("U1", None, Availability.ON_CALL)
    assert roster.adopt(ON_A_CALL) is None  # the same class again moves nobody
    assert roster.adopt(NEVER_REPORTED) is None  # nobody's extension
    assert roster.presence("1002") == NEVER_REPORTED


async def test_an_unreachable_server_is_reported_and_stop_still_ends_the_task() -> None:
    lonely = ReplicaBus(
        "postgresql+asyncpg://nobody@127.0.0.1:1/none", replica_id="r", epoch=lambda: None
    )
    task = asyncio.create_task(lonely.run())
    lonely.publish("note", "queued while away")
    await wait_until(lambda: lonely.stale_for() > 0, message="the bus to count staleness")
    assert not lonely.connected
    assert lonely.disconnected_since is not None
    await lonely.stop()
    await task
    assert lonely.stats.connects == 0


@pytest.mark.parametrize("topic", ["", "Upper", "x" * 41, "with space"])
def test_a_topic_outside_the_alphabet_is_refused(topic: str) -> None:
    lonely = ReplicaBus("postgresql+asyncpg://u@127.0.0.1/db", replica_id="r", epoch=lambda: None)
    with pytest.raises(ValueError, match="topic"):
        lonely.publish(topic, None)


def test_the_bus_needs_postgresql() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        ReplicaBus("sqlite+aiosqlite:///x.db", replica_id="r", epoch=lambda: None)
