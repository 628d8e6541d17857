"""Pure parsing of RingCentral notifications and REST presence records into domain updates."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final, TypeGuard, TypeVar

from bot.presence import (
    ON_CALL_STATES,
    CallDirection,
    CallParty,
    CallSummary,
    DndStatus,
    MeetingStatus,
    PresenceStatus,
    PresenceUpdate,
    TelephonyStatus,
    UpdateSource,
)

_E = TypeVar("_E", bound=StrEnum)

_EXTENSION_ID: Final = re.compile(r"[0-9]{1,20}")
_PERSONAL_DND: Final = frozenset(
    {DndStatus.TAKE_ALL_CALLS, DndStatus.DO_NOT_ACCEPT_ANY_CALLS, DndStatus.UNKNOWN}
)


class MalformedPayload(ValueError):
    """A RingCentral payload we cannot use.

    The message is a short reason naming the field, never a value from the payload: payloads
    carry phone numbers and names (`activeCalls[].from`, `to`, `fromName`) that must not reach logs.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ExtensionEventType(StrEnum):
    """`eventType` of an extension-list (or extension-info) notification."""

    CREATE = "Create"
    UPDATE = "Update"
    DELETE = "Delete"


@dataclass(frozen=True, slots=True)
class ExtensionChange:
    """One extension was created, updated or deleted; `hints` say what changed on an update."""

    extension_id: str
    event_type: ExtensionEventType
    hints: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExtensionListChange:
    """The account's extension list changed: the directory should refresh these extensions."""

    changes: tuple[ExtensionChange, ...]
    uuid: str | None
    received_at: datetime


Notification = PresenceUpdate | ExtensionListChange

InternalNumber = Callable[[str], bool]
"""Whether a number (`activeCalls[].from` or `to`) is an extension of this account."""


def parse_notification(
    envelope: object, *, received_at: datetime, internal_number: InternalNumber | None = None
) -> Notification:
    """Parse the body of a `ServerNotification` (the `uuid`/`event`/`body` envelope).

    Routing looks at the body, never at `event` (RingCentral rewrites `~` and its account-level
    sample is ambiguous): `extensions[]` is an extension-list change, `eventType` a single
    extension-info change, `extensionId` a presence event. Fields a presence event lacks are
    unchanged, and an explicit null counts as lacking. `internal_number` tells a colleague's
    number from anyone else's; the number itself is read for that and then dropped.

    Raises:
        MalformedPayload: the envelope is not an object, has no body object, the body is none of
            the above, or a field has the wrong type or an undocumented enum value.
    """
    received_at = _utc(received_at)
    if not isinstance(envelope, dict):
        raise MalformedPayload("notification is not a JSON object")
    uuid = _optional_str(envelope, "uuid")
    body = envelope.get("body")
    if not isinstance(body, dict):
        raise MalformedPayload("notification has no body object")
    if "extensions" in body:
        return ExtensionListChange(
            changes=_extension_changes(body.get("extensions")),
            uuid=uuid,
            received_at=received_at,
        )
    if "eventType" in body:
        return ExtensionListChange(
            changes=(_extension_change(body, "body"),), uuid=uuid, received_at=received_at
        )
    if "extensionId" not in body:
        raise MalformedPayload("body has neither extensionId nor extensions")
    return _presence_update(
        body,
        extension_id=_extension_id(body.get("extensionId"), "extensionId"),
        source=UpdateSource.EVENT,
        received_at=received_at,
        uuid=uuid,
        sequence=_sequence(body.get("sequence")),
        internal_number=internal_number,
    )


def parse_presence_record(
    record: object, *, received_at: datetime, extension_id: str | int | None = None
) -> PresenceUpdate:
    """Parse one presence record from `GET /account/~/presence` or `.../extension/{id}/presence`.

    A record is the whole state: a field it lacks is unknown, not unchanged, and the update
    carries no sequence. `extension_id` is the one that was asked for, for the per-extension
    GET; a record that names a different extension is malformed.

    Raises:
        MalformedPayload: the record is not an object, names no (or another) extension, or a field
            has the wrong type or an undocumented enum value.
    """
    received_at = _utc(received_at)
    if not isinstance(record, dict):
        raise MalformedPayload("presence record is not a JSON object")
    expected = None if extension_id is None else _extension_id(extension_id, "extension_id")
    extension = record.get("extension")
    if extension is None:
        if expected is None:
            raise MalformedPayload("presence record has no extension.id")
        found = expected
    elif isinstance(extension, dict):
        found = _extension_id(extension.get("id"), "extension.id")
        if expected is not None and found != expected:
            raise MalformedPayload("presence record is for another extension")
    else:
        raise MalformedPayload("extension is not an object")
    return _presence_update(
        record,
        extension_id=found,
        source=UpdateSource.SNAPSHOT,
        received_at=received_at,
        uuid=None,
        sequence=None,
    )


def parse_timestamp(value: object, field: str) -> datetime:
    """An ISO 8601 timestamp with an offset (`Z`, `+0000`, `+00:00`) as an aware UTC datetime."""
    if not isinstance(value, str):
        raise MalformedPayload(f"{field} is not a string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        # `from None`: the ValueError's own message quotes the input.
        raise MalformedPayload(f"{field} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise MalformedPayload(f"{field} has no UTC offset")
    return parsed.astimezone(UTC)


def _presence_update(
    fields: Mapping[str, object],
    *,
    extension_id: str,
    source: UpdateSource,
    received_at: datetime,
    uuid: str | None,
    sequence: int | None,
    internal_number: InternalNumber | None = None,
) -> PresenceUpdate:
    dnd_personal = _optional_enum(fields, "dndStatusPersonal", DndStatus)
    if dnd_personal is not None and dnd_personal not in _PERSONAL_DND:
        dnd_personal = None  # a value this field does not take: ignored like any unknown one
    return PresenceUpdate(
        extension_id=extension_id,
        source=source,
        received_at=received_at,
        sequence=sequence,
        uuid=uuid,
        presence_status=_optional_enum(fields, "presenceStatus", PresenceStatus),
        user_status=_optional_enum(fields, "userStatus", PresenceStatus),
        telephony_status=_optional_enum(fields, "telephonyStatus", TelephonyStatus),
        aggregated_telephony_status=_optional_enum(
            fields, "aggregatedTelephonyStatus", TelephonyStatus
        ),
        dnd_status=_optional_enum(fields, "dndStatus", DndStatus),
        dnd_status_personal=dnd_personal,
        meeting_status=_optional_enum(fields, "meetingStatus", MeetingStatus),
        allow_see_my_presence=_optional_bool(fields, "allowSeeMyPresence"),
        calls=_call_summary(fields, internal_number),
    )


def _call_summary(
    fields: Mapping[str, object], internal_number: InternalNumber | None
) -> CallSummary | None:
    """Count and earliest connected call from `activeCalls`.

    Names are never read; of the numbers, only the other party's (`from` on an inbound call,
    `to` on an outbound one) is looked at, to say internal or external, and not kept.
    """
    raw_calls = fields.get("activeCalls")
    total = fields.get("totalActiveCalls")
    if raw_calls is None and total is None:
        return None
    if total is not None and not _is_count(total):
        raise MalformedPayload("totalActiveCalls is not a non-negative integer")
    if raw_calls is None:
        raw_calls = []
    if not isinstance(raw_calls, list):
        raise MalformedPayload("activeCalls is not a list")

    # The earliest connected call with a start time, else the first connected one.
    earliest: tuple[datetime, CallDirection | None, CallParty | None] | None = None
    first: tuple[datetime | None, CallDirection | None, CallParty | None] | None = None
    for index, call in enumerate(raw_calls):
        where = f"activeCalls[{index}]"
        if not isinstance(call, dict):
            raise MalformedPayload(f"{where} is not an object")
        status = _optional_enum(call, "telephonyStatus", TelephonyStatus, where)
        direction = _optional_enum(call, "direction", CallDirection, where)
        raw_start = call.get("startTime")
        start = None if raw_start is None else parse_timestamp(raw_start, f"{where}.startTime")
        if status not in ON_CALL_STATES:
            continue
        party = _party(call, direction, internal_number)
        if first is None:
            first = (start, direction, party)
        if start is not None and (earliest is None or start < earliest[0]):
            earliest = (start, direction, party)
    chosen = earliest or first or (None, None, None)
    count = total if _is_count(total) else len(raw_calls)
    return CallSummary(count=count, connected_since=chosen[0], direction=chosen[1], party=chosen[2])


def _party(
    call: Mapping[str, object],
    direction: CallDirection | None,
    internal_number: InternalNumber | None,
) -> CallParty | None:
    if internal_number is None or direction is None:
        return None
    other = call.get("from" if direction is CallDirection.INBOUND else "to")
    if not isinstance(other, str) or not other.strip():
        return None
    return CallParty.INTERNAL if internal_number(other.strip()) else CallParty.EXTERNAL


def _extension_changes(value: object) -> tuple[ExtensionChange, ...]:
    if not isinstance(value, list):
        raise MalformedPayload("extensions is not a list")
    changes: list[ExtensionChange] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise MalformedPayload(f"extensions[{index}] is not an object")
        changes.append(_extension_change(item, f"extensions[{index}]"))
    return tuple(changes)


def _extension_change(item: Mapping[str, object], where: str) -> ExtensionChange:
    extension_id = _extension_id(item.get("extensionId"), f"{where}.extensionId")
    event_type = _optional_enum(item, "eventType", ExtensionEventType, where)
    if event_type is None:
        raise MalformedPayload(f"{where}.eventType is missing")
    hints = item.get("hints")
    if hints is None:
        return ExtensionChange(extension_id, event_type)
    if not isinstance(hints, list) or not all(isinstance(hint, str) for hint in hints):
        raise MalformedPayload(f"{where}.hints is not a list of strings")
    return ExtensionChange(extension_id, event_type, tuple(hints))


def _extension_id(value: object, field: str) -> str:
    """Extension ids are int64: strings of digits in events, numbers in REST records."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and _EXTENSION_ID.fullmatch(value):
        return value
    if value is None:
        raise MalformedPayload(f"{field} is missing")
    raise MalformedPayload(f"{field} is not an extension id")


def _sequence(value: object) -> int | None:
    if value is None:
        return None
    if not _is_count(value):
        raise MalformedPayload("sequence is not a non-negative integer")
    return value


def _is_count(value: object) -> TypeGuard[int]:
    # bool is an int subclass, and JSON true must not pass for 1.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _optional_enum(
    fields: Mapping[str, object], key: str, kind: type[_E], where: str = ""
) -> _E | None:
    value = fields.get(key)
    name = f"{where}.{key}" if where else key
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedPayload(f"{name} is not a string")
    try:
        return kind(value)
    except ValueError:
        # A value RingCentral added after this code was written: treat the field as absent, so
        # the rest of the update still applies instead of the whole event being dropped.
        return None


def _optional_bool(fields: Mapping[str, object], key: str) -> bool | None:
    value = fields.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise MalformedPayload(f"{key} is not a boolean")


def _optional_str(fields: Mapping[str, object], key: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"{key} is not a non-empty string")
    return value


def _utc(received_at: datetime) -> datetime:
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    return received_at.astimezone(UTC)
