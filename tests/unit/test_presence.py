"""Presence classification, merging by sequence and uuid, and the transitions a call produces."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.presence import (
    Availability,
    CallDirection,
    CallSummary,
    DndStatus,
    MeetingStatus,
    Presence,
    PresenceBook,
    PresenceStatus,
    PresenceUpdate,
    TelephonyStatus,
    Transition,
    UpdateSource,
    merge,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "presence.md"
STATE_FIELDS = (
    "presence_status",
    "user_status",
    "telephony_status",
    "aggregated_telephony_status",
    "dnd_status",
    "dnd_status_personal",
    "meeting_status",
    "allow_see_my_presence",
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(
    sequence: int | None, seconds: float = 0, *, uuid: str | None = None, **fields: Any
) -> PresenceUpdate:
    return PresenceUpdate(
        extension_id=fields.pop("extension_id", "101"),
        source=UpdateSource.EVENT,
        received_at=at(seconds),
        sequence=sequence,
        uuid=uuid,
        **fields,
    )


def snapshot(seconds: float = 0, **fields: Any) -> PresenceUpdate:
    return PresenceUpdate(
        extension_id=fields.pop("extension_id", "101"),
        source=UpdateSource.SNAPSHOT,
        received_at=at(seconds),
        **fields,
    )


IDLE: dict[str, Any] = {
    "presence_status": PresenceStatus.AVAILABLE,
    "user_status": PresenceStatus.AVAILABLE,
    "telephony_status": TelephonyStatus.NO_CALL,
    "dnd_status": DndStatus.TAKE_ALL_CALLS,
    "meeting_status": MeetingStatus.DISCONNECTED,
    "allow_see_my_presence": True,
}


def state(**fields: Any) -> Presence:
    return Presence(extension_id="101", availability_since=T0, updated_at=T0, **fields)


def current(book: PresenceBook, extension_id: str = "101") -> Presence:
    presence = book.get(extension_id)
    assert presence is not None
    return presence


# --- classification ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (IDLE, Availability.AVAILABLE),
        ({**IDLE, "telephony_status": TelephonyStatus.RINGING}, Availability.RINGING),
        ({**IDLE, "telephony_status": TelephonyStatus.CALL_CONNECTED}, Availability.ON_CALL),
        ({**IDLE, "telephony_status": TelephonyStatus.ON_HOLD}, Availability.ON_CALL),
        ({**IDLE, "telephony_status": TelephonyStatus.PARKED_CALL}, Availability.BUSY),
        ({**IDLE, "meeting_status": MeetingStatus.CONNECTED}, Availability.IN_MEETING),
        ({**IDLE, "dnd_status": DndStatus.DO_NOT_ACCEPT_ANY_CALLS}, Availability.DND),
        ({**IDLE, "dnd_status_personal": DndStatus.DO_NOT_ACCEPT_ANY_CALLS}, Availability.DND),
        # A call-queue setting is not do-not-disturb for direct calls.
        ({**IDLE, "dnd_status": DndStatus.DO_NOT_ACCEPT_DEPARTMENT_CALLS}, Availability.AVAILABLE),
        ({**IDLE, "dnd_status": DndStatus.UNKNOWN}, Availability.AVAILABLE),
        ({**IDLE, "presence_status": PresenceStatus.BUSY}, Availability.BUSY),
        ({**IDLE, "presence_status": PresenceStatus.OFFLINE}, Availability.OFFLINE),
        ({**IDLE, "allow_see_my_presence": False}, Availability.HIDDEN),
        ({}, Availability.OFFLINE),
        ({"user_status": PresenceStatus.AVAILABLE}, Availability.AVAILABLE),
        ({"user_status": PresenceStatus.BUSY}, Availability.BUSY),
        # A missing allowSeeMyPresence is the documented default, true.
        ({"presence_status": PresenceStatus.AVAILABLE}, Availability.AVAILABLE),
    ],
)
def test_each_availability_class(fields: dict[str, Any], expected: Availability) -> None:
    assert state(**fields).availability is expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # hidden > on_call > ringing > in_meeting > dnd > offline > busy > available
        (
            {"allow_see_my_presence": False, "telephony_status": TelephonyStatus.CALL_CONNECTED},
            Availability.HIDDEN,
        ),
        (
            {
                "telephony_status": TelephonyStatus.ON_HOLD,
                "meeting_status": MeetingStatus.CONNECTED,
            },
            Availability.ON_CALL,
        ),
        (
            {
                "telephony_status": TelephonyStatus.RINGING,
                "meeting_status": MeetingStatus.CONNECTED,
            },
            Availability.RINGING,
        ),
        (
            {
                "meeting_status": MeetingStatus.CONNECTED,
                "dnd_status": DndStatus.DO_NOT_ACCEPT_ANY_CALLS,
            },
            Availability.IN_MEETING,
        ),
        (
            {
                "dnd_status_personal": DndStatus.DO_NOT_ACCEPT_ANY_CALLS,
                "presence_status": PresenceStatus.OFFLINE,
            },
            Availability.DND,
        ),
        (
            {
                "presence_status": PresenceStatus.OFFLINE,
                "telephony_status": TelephonyStatus.PARKED_CALL,
            },
            Availability.OFFLINE,
        ),
        (
            {"presence_status": PresenceStatus.OFFLINE, "user_status": PresenceStatus.AVAILABLE},
            Availability.OFFLINE,
        ),
        (
            {
                "presence_status": PresenceStatus.BUSY,
                "telephony_status": TelephonyStatus.CALL_CONNECTED,
            },
            Availability.ON_CALL,
        ),
    ],
)
def test_precedence(fields: dict[str, Any], expected: Availability) -> None:
    assert state(**fields).availability is expected


def test_aggregated_telephony_is_used_only_when_telephony_is_absent() -> None:
    aggregated_only = state(
        presence_status=PresenceStatus.BUSY,
        aggregated_telephony_status=TelephonyStatus.CALL_CONNECTED,
    )
    both = state(
        presence_status=PresenceStatus.AVAILABLE,
        telephony_status=TelephonyStatus.NO_CALL,
        aggregated_telephony_status=TelephonyStatus.CALL_CONNECTED,
    )

    assert aggregated_only.availability is Availability.ON_CALL
    assert both.availability is Availability.AVAILABLE


def test_docs_table_shows_the_words_and_emoji_of_every_class() -> None:
    rows = {
        line.split("|")[1].strip(): line
        for line in DOCS.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
    }
    for availability in Availability:
        row = rows[f"`{availability.value}`"]
        assert availability.label in row
        assert availability.emoji in row


# --- a call, end to end --------------------------------------------------------------------


def test_a_call_yields_exactly_ringing_on_call_available() -> None:
    book = PresenceBook()
    feed = [
        snapshot(0, **IDLE),
        event(1, 10, presence_status=PresenceStatus.BUSY, telephony_status=TelephonyStatus.RINGING),
        event(2, 14, telephony_status=TelephonyStatus.CALL_CONNECTED),
        event(3, 60, telephony_status=TelephonyStatus.ON_HOLD),
        event(4, 90, telephony_status=TelephonyStatus.CALL_CONNECTED),
        event(
            5,
            300,
            presence_status=PresenceStatus.AVAILABLE,
            telephony_status=TelephonyStatus.NO_CALL,
        ),
    ]

    transitions = [t for t in map(book.apply, feed) if t is not None]

    assert [(t.old, t.new, t.since) for t in transitions] == [
        (None, Availability.AVAILABLE, at(0)),
        (Availability.AVAILABLE, Availability.RINGING, at(10)),
        (Availability.RINGING, Availability.ON_CALL, at(14)),
        (Availability.ON_CALL, Availability.AVAILABLE, at(300)),
    ]
    assert transitions[2].presence.on_call_since == at(14)
    assert current(book).on_call_since is None
    assert current(book).availability_since == at(300)


def test_hold_and_resume_keep_the_call_start() -> None:
    book = PresenceBook()
    book.apply(snapshot(0, **IDLE))
    book.apply(event(1, 14, telephony_status=TelephonyStatus.CALL_CONNECTED))
    book.apply(event(2, 60, telephony_status=TelephonyStatus.ON_HOLD))
    book.apply(event(3, 90, telephony_status=TelephonyStatus.CALL_CONNECTED))

    assert current(book).on_call_since == at(14)
    assert current(book).availability_since == at(14)


def test_call_start_comes_from_active_calls_when_reported() -> None:
    book = PresenceBook()
    book.apply(snapshot(0, **IDLE))
    calls = CallSummary(count=1, connected_since=at(5), direction=CallDirection.OUTBOUND)

    transition = book.apply(
        event(1, 14, telephony_status=TelephonyStatus.CALL_CONNECTED, calls=calls)
    )

    assert transition is not None
    assert transition.since == at(5)
    assert transition.presence.call_direction is CallDirection.OUTBOUND
    assert transition.presence.active_calls == 1


def test_plain_events_during_a_call_keep_the_reported_call_facts() -> None:
    book = PresenceBook()
    book.apply(snapshot(0, **IDLE))
    calls = CallSummary(count=1, connected_since=at(5), direction=CallDirection.INBOUND)
    book.apply(event(1, 10, telephony_status=TelephonyStatus.CALL_CONNECTED, calls=calls))

    book.apply(event(2, 60, telephony_status=TelephonyStatus.ON_HOLD))

    assert current(book).call_direction is CallDirection.INBOUND
    assert current(book).active_calls == 1
    assert current(book).on_call_since == at(5)


def test_chained_calls_are_one_stretch_on_the_phone() -> None:
    book = PresenceBook()
    book.apply(snapshot(0, **IDLE))
    first = CallSummary(count=1, connected_since=at(5), direction=CallDirection.INBOUND)
    second = CallSummary(count=1, connected_since=at(50), direction=CallDirection.OUTBOUND)
    book.apply(event(1, 10, telephony_status=TelephonyStatus.CALL_CONNECTED, calls=first))

    assert book.apply(event(2, 60, calls=second)) is None
    assert current(book).on_call_since == at(5)
    assert current(book).call_direction is CallDirection.OUTBOUND


def test_hang_up_without_call_details_clears_the_call_facts() -> None:
    book = PresenceBook()
    calls = CallSummary(count=2, connected_since=at(5), direction=CallDirection.INBOUND)
    book.apply(event(1, 10, **IDLE, calls=calls))
    book.apply(event(2, 11, telephony_status=TelephonyStatus.CALL_CONNECTED, calls=calls))

    book.apply(event(3, 20, telephony_status=TelephonyStatus.NO_CALL))

    assert current(book).active_calls == 0
    assert current(book).call_direction is None
    assert current(book).on_call_since is None


def test_snapshot_during_a_call_keeps_the_call_start() -> None:
    book = PresenceBook()
    book.apply(snapshot(0, **IDLE))
    book.apply(event(1, 14, telephony_status=TelephonyStatus.CALL_CONNECTED))

    assert (
        book.apply(snapshot(200, **{**IDLE, "telephony_status": TelephonyStatus.ON_HOLD})) is None
    )
    assert current(book).on_call_since == at(14)
    assert current(book).availability_since == at(14)


# --- merging -------------------------------------------------------------------------------


def test_partial_event_changes_only_what_it_carries() -> None:
    book = PresenceBook()
    book.apply(snapshot(0, **IDLE, dnd_status_personal=DndStatus.TAKE_ALL_CALLS))

    book.apply(event(1, 5, telephony_status=TelephonyStatus.RINGING))

    assert current(book) == dataclasses.replace(
        state(**IDLE, dnd_status_personal=DndStatus.TAKE_ALL_CALLS, active_calls=0),
        telephony_status=TelephonyStatus.RINGING,
        availability_since=at(5),
        updated_at=at(5),
    )


def test_field_change_that_keeps_availability_updates_state_without_transition() -> None:
    book = PresenceBook()
    book.apply(snapshot(0, **IDLE))
    book.apply(event(1, 10, telephony_status=TelephonyStatus.CALL_CONNECTED))

    transition = book.apply(event(2, 20, user_status=PresenceStatus.BUSY))

    assert transition is None
    assert current(book).user_status is PresenceStatus.BUSY
    assert current(book).updated_at == at(20)


def test_snapshot_replaces_the_whole_state() -> None:
    book = PresenceBook()
    book.apply(event(1, 0, **{**IDLE, "meeting_status": MeetingStatus.CONNECTED}))

    transition = book.apply(snapshot(10, presence_status=PresenceStatus.AVAILABLE))

    assert transition == Transition(
        extension_id="101",
        old=Availability.IN_MEETING,
        new=Availability.AVAILABLE,
        since=at(10),
        presence=dataclasses.replace(
            state(presence_status=PresenceStatus.AVAILABLE),
            availability_since=at(10),
            updated_at=at(10),
        ),
    )
    assert current(book).meeting_status is None


def test_first_sight_of_an_extension_is_a_transition_from_none() -> None:
    transition = PresenceBook().apply(event(7, 3, **IDLE))

    assert transition is not None
    assert (transition.old, transition.new, transition.since) == (
        None,
        Availability.AVAILABLE,
        at(3),
    )


# --- ordering ------------------------------------------------------------------------------


def test_lower_or_equal_sequence_is_dropped() -> None:
    book = PresenceBook()
    book.apply(event(5, 0, **IDLE))
    book.apply(event(6, 1, telephony_status=TelephonyStatus.CALL_CONNECTED))

    assert book.apply(event(4, 2, telephony_status=TelephonyStatus.NO_CALL)) is None
    assert book.apply(event(6, 3, telephony_status=TelephonyStatus.NO_CALL)) is None
    assert current(book).telephony_status is TelephonyStatus.CALL_CONNECTED
    assert book.dropped_stale == 2


def test_out_of_order_partial_events_never_move_state_backwards() -> None:
    book = PresenceBook()
    book.apply(snapshot(0, **IDLE))
    ringing = event(1, 1, telephony_status=TelephonyStatus.RINGING)
    connected = event(2, 2, telephony_status=TelephonyStatus.CALL_CONNECTED)
    ended = event(3, 3, telephony_status=TelephonyStatus.NO_CALL)

    transitions = [book.apply(update) for update in (ended, connected, ringing, ended)]

    assert [t.new if t else None for t in transitions] == [None, None, None, None]
    assert current(book).availability is Availability.AVAILABLE
    assert current(book).updated_at == at(3)


def test_duplicate_uuid_is_dropped_even_without_sequence() -> None:
    book = PresenceBook()
    book.apply(event(None, 0, uuid="a", **IDLE))
    book.apply(event(None, 1, uuid="b", telephony_status=TelephonyStatus.RINGING))

    assert book.apply(event(None, 2, uuid="a", telephony_status=TelephonyStatus.NO_CALL)) is None
    assert current(book).telephony_status is TelephonyStatus.RINGING
    assert book.dropped_duplicates == 1


def test_events_without_sequence_are_accepted_and_keep_the_last_sequence() -> None:
    book = PresenceBook()
    book.apply(event(9, 0, **IDLE))
    book.apply(event(None, 1, telephony_status=TelephonyStatus.RINGING))

    assert current(book).availability is Availability.RINGING
    assert book.apply(event(9, 2, telephony_status=TelephonyStatus.NO_CALL)) is None


def test_snapshot_resets_the_sequence() -> None:
    book = PresenceBook()
    book.apply(event(500, 0, **IDLE))
    book.apply(snapshot(1, **IDLE))

    transition = book.apply(event(2, 2, telephony_status=TelephonyStatus.RINGING))

    assert transition is not None
    assert transition.new is Availability.RINGING


def test_forget_sequences_accepts_the_next_event_of_every_extension() -> None:
    book = PresenceBook()
    book.apply(event(500, 0, **IDLE))
    book.apply(event(700, 0, **IDLE, extension_id="102"))

    book.forget_sequences()

    assert book.apply(event(1, 1, telephony_status=TelephonyStatus.RINGING)) is not None
    assert book.apply(event(1, 1, telephony_status=TelephonyStatus.RINGING, extension_id="102"))


def test_remembered_uuids_are_bounded() -> None:
    book = PresenceBook(remembered_uuids=2)
    book.apply(event(None, 0, uuid="a", **IDLE))
    book.apply(event(None, 1, uuid="b", telephony_status=TelephonyStatus.RINGING))
    book.apply(event(None, 2, uuid="c", telephony_status=TelephonyStatus.CALL_CONNECTED))

    assert book.apply(event(None, 3, uuid="c", telephony_status=TelephonyStatus.NO_CALL)) is None
    # "a" fell out of the window, so a replay of it is accepted again.
    replay = book.apply(event(None, 4, uuid="a", telephony_status=TelephonyStatus.NO_CALL))
    assert replay is not None
    assert replay.new is Availability.AVAILABLE


def test_remove_forgets_state_and_sequence() -> None:
    book = PresenceBook()
    book.apply(event(50, 0, **IDLE))
    book.apply(event(1, 0, **IDLE, extension_id="102"))

    removed = book.remove("101")

    assert removed is not None
    assert removed.availability is Availability.AVAILABLE
    assert "101" not in book
    assert len(book) == 1
    assert list(book.extension_ids()) == ["102"]
    assert book.remove("101") is None
    assert book.apply(event(1, 1, **IDLE)) is not None


@pytest.mark.parametrize(
    "bad",
    [
        {"received_at": datetime(2026, 3, 2, 9, 0)},
        {"sequence": -1},
    ],
)
def test_updates_reject_naive_times_and_negative_sequences(bad: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "extension_id": "101",
        "source": UpdateSource.EVENT,
        "received_at": T0,
        **bad,
    }
    with pytest.raises(ValueError, match=r"timezone-aware|non-negative"):
        PresenceUpdate(**fields)


# --- properties ----------------------------------------------------------------------------

EXTENSIONS = ("101", "102", "103")
FULL_FIELDS = st.fixed_dictionaries(
    {
        "presence_status": st.sampled_from(PresenceStatus),
        "user_status": st.sampled_from(PresenceStatus),
        "telephony_status": st.sampled_from(TelephonyStatus),
        "aggregated_telephony_status": st.sampled_from(TelephonyStatus),
        "dnd_status": st.sampled_from(DndStatus),
        "dnd_status_personal": st.sampled_from(
            [DndStatus.TAKE_ALL_CALLS, DndStatus.DO_NOT_ACCEPT_ANY_CALLS, DndStatus.UNKNOWN]
        ),
        "meeting_status": st.sampled_from(MeetingStatus),
        "allow_see_my_presence": st.booleans(),
    }
)
PARTIAL_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "presence_status": st.sampled_from(PresenceStatus),
        "user_status": st.sampled_from(PresenceStatus),
        "telephony_status": st.sampled_from(TelephonyStatus),
        "aggregated_telephony_status": st.sampled_from(TelephonyStatus),
        "dnd_status": st.sampled_from(DndStatus),
        "meeting_status": st.sampled_from(MeetingStatus),
        "allow_see_my_presence": st.booleans(),
        "calls": st.builds(
            CallSummary,
            count=st.integers(0, 7),
            connected_since=st.none() | st.integers(0, 10_000).map(at),
            direction=st.none() | st.sampled_from(CallDirection),
        ),
    },
)


def numbered_stream(
    per_extension: dict[str, list[dict[str, Any]]], gaps: list[int]
) -> dict[str, list[PresenceUpdate]]:
    """Give each extension's updates increasing (gapped) sequences and unique uuids."""
    clock = count()
    numbered: dict[str, list[PresenceUpdate]] = {}
    gap = iter(gaps * 50)
    for extension_id, bodies in per_extension.items():
        sequence = next(gap)
        updates = []
        for body in bodies:
            sequence += 1 + next(gap)
            updates.append(
                event(
                    sequence,
                    next(clock),
                    uuid=f"{extension_id}-{sequence}",
                    extension_id=extension_id,
                    **body,
                )
            )
        numbered[extension_id] = updates
    return numbered


def projection(presence: Presence | PresenceUpdate) -> tuple[object, ...]:
    return tuple(getattr(presence, name) for name in STATE_FIELDS)


@settings(deadline=None)
@given(
    per_extension=st.dictionaries(
        st.sampled_from(EXTENSIONS), st.lists(FULL_FIELDS, min_size=1, max_size=8), min_size=1
    ),
    gaps=st.lists(st.integers(0, 3), min_size=1, max_size=5),
    data=st.data(),
)
def test_any_interleaving_of_full_updates_converges_to_the_highest_sequence(
    per_extension: dict[str, list[dict[str, Any]]], gaps: list[int], data: st.DataObject
) -> None:
    numbered = numbered_stream(per_extension, gaps)
    stream = [update for updates in numbered.values() for update in updates]
    duplicates = data.draw(st.lists(st.sampled_from(stream), max_size=len(stream)))
    delivery = data.draw(st.permutations(stream + duplicates))

    book = PresenceBook()
    for update in delivery:
        book.apply(update)

    assert len(book) == len(numbered)
    for extension_id, updates in numbered.items():
        latest = updates[-1]
        presence = current(book, extension_id)
        assert projection(presence) == projection(latest)
        assert presence.updated_at == latest.received_at
        assert (presence.on_call_since is not None) == presence.is_on_call


@settings(deadline=None)
@given(
    per_extension=st.dictionaries(
        st.sampled_from(EXTENSIONS), st.lists(PARTIAL_FIELDS, max_size=10), min_size=1
    ),
    gaps=st.lists(st.integers(0, 3), min_size=1, max_size=5),
    data=st.data(),
)
def test_partial_updates_in_order_with_duplicates_equal_the_cumulative_merge(
    per_extension: dict[str, list[dict[str, Any]]], gaps: list[int], data: st.DataObject
) -> None:
    numbered = numbered_stream(per_extension, gaps)
    # Interleave extensions while keeping each one's order, replaying some earlier deliveries.
    pending = {extension_id: list(updates) for extension_id, updates in numbered.items()}
    delivered: list[PresenceUpdate] = []
    delivery: list[PresenceUpdate] = []
    while any(pending.values()):
        if delivered and data.draw(st.booleans()):
            delivery.append(data.draw(st.sampled_from(delivered)))
            continue
        extension_id = data.draw(st.sampled_from([e for e, rest in pending.items() if rest]))
        update = pending[extension_id].pop(0)
        delivered.append(update)
        delivery.append(update)

    book = PresenceBook()
    for update in delivery:
        book.apply(update)

    for extension_id, updates in numbered.items():
        expected: Presence | None = None
        for update in updates:
            expected = merge(expected, update)
        assert book.get(extension_id) == expected


def test_restore_loads_stored_state_without_transitions_and_live_state_wins() -> None:
    book = PresenceBook()
    book.apply(event(40, 0, **IDLE, extension_id="102"))
    on_call = dataclasses.replace(
        state(**{**IDLE, "telephony_status": TelephonyStatus.CALL_CONNECTED}),
        on_call_since=at(-60),
        availability_since=at(-60),
    )
    stale_102 = dataclasses.replace(on_call, extension_id="102")

    assert book.restore([on_call, stale_102]) == 1

    assert current(book, "102").availability is Availability.AVAILABLE
    assert [p.extension_id for p in book.presences()] == ["102", "101"]
    # The restart happened mid-call: the hang-up (any sequence) still ends it.
    transition = book.apply(event(1, 5, telephony_status=TelephonyStatus.NO_CALL))
    assert transition is not None
    assert (transition.old, transition.new) == (Availability.ON_CALL, Availability.AVAILABLE)
