"""The roster: presence and links in one place, and the changes each person sees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.presence import Availability, PresenceStatus, PresenceUpdate, TelephonyStatus, UpdateSource
from bot.roster import Roster, availability_of

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def event(
    extension_id: str, telephony: TelephonyStatus, at: float, sequence: int
) -> PresenceUpdate:
    return PresenceUpdate(
        extension_id,
        UpdateSource.EVENT,
        T0 + timedelta(seconds=at),
        sequence=sequence,
        presence_status=PresenceStatus.AVAILABLE,
        telephony_status=telephony,
    )


def test_an_unlinked_extension_is_kept_but_concerns_nobody() -> None:
    roster = Roster()
    moved, change = roster.apply(event("101", TelephonyStatus.CALL_CONNECTED, 0, 1))
    assert moved
    assert change is None
    assert roster.presence("101") is not None
    # Linked later, the person shows the call at once, from its start.
    [linked] = roster.set_links({"U1": "101"}, at=T0 + timedelta(seconds=30))
    assert (linked.old, linked.new, linked.since) == (None, Availability.ON_CALL, T0)
    assert availability_of(roster, "U1") is Availability.ON_CALL


def test_a_linked_extension_changes_its_person() -> None:
    roster = Roster()
    roster.set_links({"U1": "101"}, at=T0)
    _moved, change = roster.apply(event("101", TelephonyStatus.NO_CALL, 0, 1))
    assert change is not None
    assert (change.user_id, change.new) == ("U1", Availability.AVAILABLE)
    _moved, change = roster.apply(event("101", TelephonyStatus.CALL_CONNECTED, 5, 2))
    assert change is not None
    assert (change.old, change.new) == (Availability.AVAILABLE, Availability.ON_CALL)
    # The same state again is no change; a stale event is dropped.
    assert roster.apply(event("101", TelephonyStatus.CALL_CONNECTED, 6, 3)) == (False, None)
    assert roster.apply(event("101", TelephonyStatus.NO_CALL, 7, 2)) == (False, None)


def test_relinking_moves_a_person_and_unlinking_makes_them_unknown() -> None:
    roster = Roster()
    roster.set_links({"U1": "101", "U2": "102"}, at=T0)
    roster.apply(event("101", TelephonyStatus.CALL_CONNECTED, 0, 1))
    roster.apply(event("103", TelephonyStatus.NO_CALL, 0, 1))
    changes = roster.set_links({"U1": "103"}, at=T0 + timedelta(seconds=9))
    by_user = {c.user_id: c for c in changes}
    assert (by_user["U1"].old, by_user["U1"].new) == (Availability.ON_CALL, Availability.AVAILABLE)
    assert by_user["U1"].extension_id == "103"
    assert (by_user["U2"].extension_id, by_user["U2"].new) == (None, None)
    assert roster.user_of("101") is None
    assert roster.extension_of("U2") is None
    assert list(roster.linked_people()) == ["U1"]


def test_a_deleted_extension_leaves_its_person_unknown() -> None:
    roster = Roster()
    roster.set_links({"U1": "101"}, at=T0)
    roster.apply(event("101", TelephonyStatus.CALL_CONNECTED, 0, 1))
    change = roster.remove("101", at=T0 + timedelta(seconds=3))
    assert change is not None
    assert (change.old, change.new) == (Availability.ON_CALL, None)
    assert availability_of(roster, "U1") is None
    assert roster.remove("101", at=T0) is None
