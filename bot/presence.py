"""Pure presence domain: per-extension state, merging of partial updates, availability classes."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final, TypeVar

_T = TypeVar("_T")


class Availability(StrEnum):
    """What a colleague would want to know before calling someone; see docs/presence.md."""

    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    IN_MEETING = "in_meeting"
    DND = "dnd"
    BUSY = "busy"
    OFFLINE = "offline"
    HIDDEN = "hidden"

    @property
    def label(self) -> str:
        """The words the bot shows for this class."""
        return _LABELS[self][0]

    @property
    def emoji(self) -> str:
        """The Slack emoji shortcode the bot shows for this class."""
        return _LABELS[self][1]


_LABELS: Final = MappingProxyType(
    {
        Availability.AVAILABLE: ("Available", ":large_green_circle:"),
        Availability.RINGING: ("Phone ringing", ":bell:"),
        Availability.ON_CALL: ("On a call", ":telephone_receiver:"),
        Availability.IN_MEETING: ("In a meeting", ":calendar:"),
        Availability.DND: ("Do not disturb", ":no_entry:"),
        Availability.BUSY: ("Busy", ":red_circle:"),
        Availability.OFFLINE: ("Offline", ":white_circle:"),
        Availability.HIDDEN: ("Presence not shared", ":lock:"),
    }
)


class PresenceStatus(StrEnum):
    """`presenceStatus` (aggregated) and `userStatus` (set by hand) share these values."""

    OFFLINE = "Offline"
    BUSY = "Busy"
    AVAILABLE = "Available"


class TelephonyStatus(StrEnum):
    """`telephonyStatus`, `aggregatedTelephonyStatus` and `activeCalls[].telephonyStatus`."""

    NO_CALL = "NoCall"
    CALL_CONNECTED = "CallConnected"
    RINGING = "Ringing"
    ON_HOLD = "OnHold"
    PARKED_CALL = "ParkedCall"


class DndStatus(StrEnum):
    """`dndStatus`; `dndStatusPersonal` takes only TakeAllCalls, DoNotAcceptAnyCalls, Unknown."""

    TAKE_ALL_CALLS = "TakeAllCalls"
    DO_NOT_ACCEPT_DEPARTMENT_CALLS = "DoNotAcceptDepartmentCalls"
    TAKE_DEPARTMENT_CALLS_ONLY = "TakeDepartmentCallsOnly"
    DO_NOT_ACCEPT_ANY_CALLS = "DoNotAcceptAnyCalls"
    UNKNOWN = "Unknown"


class MeetingStatus(StrEnum):
    """`meetingStatus` (RingCentral Video meetings)."""

    CONNECTED = "Connected"
    DISCONNECTED = "Disconnected"


class CallDirection(StrEnum):
    """`activeCalls[].direction`."""

    INBOUND = "Inbound"
    OUTBOUND = "Outbound"


class CallParty(StrEnum):
    """Who is on the other end: a colleague on the same account, or anyone else."""

    INTERNAL = "internal"
    EXTERNAL = "external"


class UpdateSource(StrEnum):
    """Where an update came from, which decides how it merges."""

    EVENT = "event"
    """A notification: fields it lacks are unchanged."""
    SNAPSHOT = "snapshot"
    """A REST presence record: full state, fields it lacks are unknown."""


ON_CALL_STATES: Final = frozenset({TelephonyStatus.CALL_CONNECTED, TelephonyStatus.ON_HOLD})


@dataclass(frozen=True, slots=True)
class CallSummary:
    """What the product keeps from `activeCalls`: never numbers or names of the other party."""

    count: int
    connected_since: datetime | None = None
    """Earliest `startTime` among connected or held calls."""
    direction: CallDirection | None = None
    """Direction of that earliest connected or held call."""
    party: CallParty | None = None
    """Whether that call's other party is an extension of the account; None when not known."""


# The fields an update carries and a merge copies, in RingCentral's order.
_STATE_FIELDS: Final = (
    "presence_status",
    "user_status",
    "telephony_status",
    "aggregated_telephony_status",
    "dnd_status",
    "dnd_status_personal",
    "meeting_status",
    "allow_see_my_presence",
)


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    """One parsed notification or REST record for one extension; None means "not in the payload"."""

    extension_id: str
    source: UpdateSource
    received_at: datetime
    sequence: int | None = None
    uuid: str | None = None
    presence_status: PresenceStatus | None = None
    user_status: PresenceStatus | None = None
    telephony_status: TelephonyStatus | None = None
    aggregated_telephony_status: TelephonyStatus | None = None
    dnd_status: DndStatus | None = None
    dnd_status_personal: DndStatus | None = None
    meeting_status: MeetingStatus | None = None
    allow_see_my_presence: bool | None = None
    calls: CallSummary | None = None

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        if self.sequence is not None and self.sequence < 0:
            raise ValueError("sequence must be non-negative")

    def fields_present(self) -> tuple[str, ...]:
        """Names of the presence fields this update carries."""
        return tuple(name for name in _STATE_FIELDS if getattr(self, name) is not None) + (
            ("calls",) if self.calls is not None else ()
        )


@dataclass(frozen=True, slots=True)
class Presence:
    """The last known presence of one extension; None means never reported (or unknown)."""

    extension_id: str
    availability_since: datetime
    """When the current availability began, as well as we know it."""
    updated_at: datetime
    """When the last accepted update was received."""
    presence_status: PresenceStatus | None = None
    user_status: PresenceStatus | None = None
    telephony_status: TelephonyStatus | None = None
    aggregated_telephony_status: TelephonyStatus | None = None
    dnd_status: DndStatus | None = None
    dnd_status_personal: DndStatus | None = None
    meeting_status: MeetingStatus | None = None
    allow_see_my_presence: bool | None = None
    active_calls: int | None = None
    call_direction: CallDirection | None = None
    """Direction of the call the extension is on; None when not on a call or not reported."""
    call_party: CallParty | None = None
    """Internal or external, for that same call; None when not on a call or not known."""
    on_call_since: datetime | None = None
    """Start of the current stretch on the phone; None when not on a call."""

    @property
    def telephony(self) -> TelephonyStatus | None:
        """`telephonyStatus`, or `aggregatedTelephonyStatus` when that is all we have."""
        return _telephony(self.telephony_status, self.aggregated_telephony_status)

    @property
    def is_on_call(self) -> bool:
        """Whether a call is connected or on hold, whatever the extension chooses to show."""
        return self.telephony in ON_CALL_STATES

    @property
    def availability(self) -> Availability:
        """The class this state shows as; docs/presence.md has the table and the precedence."""
        return _classify(
            allow_see_my_presence=self.allow_see_my_presence,
            telephony=self.telephony,
            meeting_status=self.meeting_status,
            dnd_status=self.dnd_status,
            dnd_status_personal=self.dnd_status_personal,
            presence_status=self.presence_status,
            user_status=self.user_status,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """An extension's availability changed; `old` is None the first time the extension is seen."""

    extension_id: str
    old: Availability | None
    new: Availability
    since: datetime
    presence: Presence


def _newer(value: _T | None, known: _T | None) -> _T | None:
    return value if value is not None else known


def _telephony(
    telephony_status: TelephonyStatus | None, aggregated: TelephonyStatus | None
) -> TelephonyStatus | None:
    # telephonyStatus wins even over a busier aggregated value: events only carry fields that
    # changed, so a stale aggregated "CallConnected" must never keep someone on a call.
    return telephony_status if telephony_status is not None else aggregated


def _classify(
    *,
    allow_see_my_presence: bool | None,
    telephony: TelephonyStatus | None,
    meeting_status: MeetingStatus | None,
    dnd_status: DndStatus | None,
    dnd_status_personal: DndStatus | None,
    presence_status: PresenceStatus | None,
    user_status: PresenceStatus | None,
) -> Availability:
    """Precedence: hidden > on_call > ringing > in_meeting > dnd > offline > busy > available."""
    # Absent allowSeeMyPresence means the documented default, true.
    if allow_see_my_presence is False:
        return Availability.HIDDEN
    if telephony in ON_CALL_STATES:
        return Availability.ON_CALL
    if telephony is TelephonyStatus.RINGING:
        return Availability.RINGING
    if meeting_status is MeetingStatus.CONNECTED:
        return Availability.IN_MEETING
    if DndStatus.DO_NOT_ACCEPT_ANY_CALLS in (dnd_status, dnd_status_personal):
        return Availability.DND
    overall = presence_status if presence_status is not None else user_status
    # Never guess "available": someone we know nothing about is shown offline, so no
    # "tell me when Alice is free" fires on missing data.
    if overall is None or overall is PresenceStatus.OFFLINE:
        return Availability.OFFLINE
    if overall is PresenceStatus.BUSY or telephony is TelephonyStatus.PARKED_CALL:
        return Availability.BUSY
    return Availability.AVAILABLE


def fold(older: PresenceUpdate, newer: PresenceUpdate) -> PresenceUpdate:
    """Two events of one extension as one, for when the hub could not take the first in time.

    The book would apply `older` then `newer`; what is left is `newer` with the fields only
    `older` carried. A `newer` that is stale by sequence would be dropped, so `older` stands.
    """
    if (
        older.sequence is not None
        and newer.sequence is not None
        and newer.sequence <= older.sequence
    ):
        return older
    filled = {
        name: value
        for name in _FOLDED_FIELDS
        if getattr(newer, name) is None and (value := getattr(older, name)) is not None
    }
    return replace(newer, **filled) if filled else newer


_FOLDED_FIELDS: Final = (*_STATE_FIELDS, "calls")


def merge(previous: Presence | None, update: PresenceUpdate) -> Presence:
    """The state after `update`: an event fills in the fields it carries; a snapshot replaces."""
    if previous is not None and update.source is UpdateSource.EVENT:
        base = previous
    else:
        base = Presence(update.extension_id, update.received_at, update.received_at)
    presence_status = _newer(update.presence_status, base.presence_status)
    user_status = _newer(update.user_status, base.user_status)
    telephony_status = _newer(update.telephony_status, base.telephony_status)
    aggregated = _newer(update.aggregated_telephony_status, base.aggregated_telephony_status)
    dnd_status = _newer(update.dnd_status, base.dnd_status)
    dnd_personal = _newer(update.dnd_status_personal, base.dnd_status_personal)
    meeting_status = _newer(update.meeting_status, base.meeting_status)
    allow_see = _newer(update.allow_see_my_presence, base.allow_see_my_presence)

    telephony = _telephony(telephony_status, aggregated)
    on_call = telephony in ON_CALL_STATES
    was_on_call = previous is not None and previous.is_on_call
    calls = update.calls

    if calls is not None:
        active_calls: int | None = calls.count
    elif telephony is TelephonyStatus.NO_CALL:
        # Only detailed events list calls; a plain hang-up event must not leave a stale count.
        active_calls = 0
    else:
        active_calls = base.active_calls

    on_call_since: datetime | None = None
    call_direction: CallDirection | None = None
    call_party: CallParty | None = None
    if on_call:
        # Hold, resume and chained calls are one stretch on the phone: keep its earliest start.
        starts: list[datetime] = []
        if was_on_call and previous is not None and previous.on_call_since is not None:
            starts.append(previous.on_call_since)
            call_direction = previous.call_direction
            call_party = previous.call_party
        if calls is not None and calls.connected_since is not None:
            starts.append(calls.connected_since)
        if calls is not None and calls.direction is not None:
            call_direction = calls.direction
            # The party belongs to the same call as the direction, known or not.
            call_party = calls.party
        on_call_since = min(starts) if starts else update.received_at

    availability = _classify(
        allow_see_my_presence=allow_see,
        telephony=telephony,
        meeting_status=meeting_status,
        dnd_status=dnd_status,
        dnd_status_personal=dnd_personal,
        presence_status=presence_status,
        user_status=user_status,
    )
    if availability is Availability.ON_CALL and on_call_since is not None:
        availability_since = on_call_since
    elif previous is not None and previous.availability is availability:
        availability_since = previous.availability_since
    else:
        availability_since = update.received_at

    return Presence(
        extension_id=update.extension_id,
        availability_since=availability_since,
        updated_at=update.received_at,
        presence_status=presence_status,
        user_status=user_status,
        telephony_status=telephony_status,
        aggregated_telephony_status=aggregated,
        dnd_status=dnd_status,
        dnd_status_personal=dnd_personal,
        meeting_status=meeting_status,
        allow_see_my_presence=allow_see,
        active_calls=active_calls,
        call_direction=call_direction,
        call_party=call_party,
        on_call_since=on_call_since,
    )


class PresenceBook:
    """Last known presence per extension, fed in any order; duplicate and stale events are dropped.

    Ordering rules (RingCentral does deliver out of order, and replays after a session recovery):
    - an event whose `uuid` was seen among the last `remembered_uuids` accepted updates is dropped;
    - an event whose `sequence` is lower than or equal to the last accepted one for its extension
      is dropped; an event without a sequence is accepted and leaves the last sequence as it was;
    - a snapshot is accepted whatever came before, replaces the whole state and forgets the
      extension's sequence, so the next event is accepted whatever its sequence (RingCentral does
      not say whether sequences survive a restart of its side, and snapshots follow reconnects).
    """

    __slots__ = (
        "_dropped_duplicates",
        "_dropped_stale",
        "_sequences",
        "_states",
        "_uuid_set",
        "_uuids",
    )

    def __init__(self, *, remembered_uuids: int = 10_000) -> None:
        if remembered_uuids < 1:
            raise ValueError("remembered_uuids must be at least 1")
        self._states: dict[str, Presence] = {}
        self._sequences: dict[str, int] = {}
        self._uuids: deque[str] = deque(maxlen=remembered_uuids)
        self._uuid_set: set[str] = set()
        self._dropped_duplicates = 0
        self._dropped_stale = 0

    def apply(self, update: PresenceUpdate) -> Transition | None:
        """Merge `update`; return a Transition only if the availability changed."""
        extension_id = update.extension_id
        if update.uuid is not None and update.uuid in self._uuid_set:
            self._dropped_duplicates += 1
            return None
        if update.source is UpdateSource.EVENT and update.sequence is not None:
            last = self._sequences.get(extension_id)
            if last is not None and update.sequence <= last:
                self._dropped_stale += 1
                return None

        previous = self._states.get(extension_id)
        current = merge(previous, update)
        self._states[extension_id] = current
        if update.source is UpdateSource.SNAPSHOT:
            self._sequences.pop(extension_id, None)
        elif update.sequence is not None:
            self._sequences[extension_id] = update.sequence
        if update.uuid is not None:
            self._remember(update.uuid)

        old = previous.availability if previous is not None else None
        new = current.availability
        if old is new:
            return None
        return Transition(
            extension_id=extension_id,
            old=old,
            new=new,
            since=current.availability_since,
            presence=current,
        )

    def get(self, extension_id: str) -> Presence | None:
        return self._states.get(extension_id)

    def restore(self, presences: Iterable[Presence]) -> int:
        """Load stored presence (at start-up) without transitions; returns how many were loaded.

        Live state wins: an extension the book already knows is left alone. Restored extensions
        have no sequence, so their next event is accepted whatever its number, and it yields a
        transition from the restored availability (a restart in the middle of a call still ends
        the call in Slack).
        """
        restored = 0
        for presence in presences:
            if presence.extension_id not in self._states:
                self._states[presence.extension_id] = presence
                restored += 1
        return restored

    def adopt(self, presence: Presence) -> Presence | None:
        """Take `presence` whatever came before (a follower taking its leader's word, which has
        been through these rules already); returns the presence it replaces."""
        self._sequences.pop(presence.extension_id, None)
        previous = self._states.get(presence.extension_id)
        self._states[presence.extension_id] = presence
        return previous

    def remove(self, extension_id: str) -> Presence | None:
        """Forget an extension (disabled or deleted); returns its last known presence."""
        self._sequences.pop(extension_id, None)
        return self._states.pop(extension_id, None)

    def forget_sequences(self) -> None:
        """Accept the next event of every extension whatever its sequence.

        For a reconnect that was not a clean recovery: RingCentral may have restarted numbering,
        and the snapshot that follows would otherwise race with newer, lower-numbered events.
        """
        self._sequences.clear()

    def extension_ids(self) -> Iterator[str]:
        return iter(tuple(self._states))

    def presences(self) -> Iterator[Presence]:
        """Every extension's last known presence (a copy of the list: the book may change)."""
        return iter(tuple(self._states.values()))

    @property
    def dropped_duplicates(self) -> int:
        return self._dropped_duplicates

    @property
    def dropped_stale(self) -> int:
        return self._dropped_stale

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, extension_id: object) -> bool:
        return extension_id in self._states

    def _remember(self, uuid: str) -> None:
        if len(self._uuids) == self._uuids.maxlen:
            self._uuid_set.discard(self._uuids[0])
        self._uuids.append(uuid)
        self._uuid_set.add(uuid)
