"""The simulated account's extensions, their presence and calls, and a bounded change log."""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from bot.sim.company import Company
from bot.sim.ringcentral.wire import dumps, iso_millis

# Records are pre-rendered once with this marker where the origin goes, and the marker is replaced
# per response by the origin the client used, so pre-rendered JSON stays right behind any host name.
BASE: Final = "{{base}}"

PRESENCE_STATUSES: Final = frozenset({"Offline", "Busy", "Available"})
TELEPHONY_STATUSES: Final = frozenset(
    {"NoCall", "CallConnected", "Ringing", "OnHold", "ParkedCall"}
)
PRESENCE_VALUES: Final[Mapping[str, frozenset[str]]] = {
    "presenceStatus": PRESENCE_STATUSES,
    "userStatus": PRESENCE_STATUSES,
    "dndStatus": frozenset(
        {
            "TakeAllCalls",
            "DoNotAcceptDepartmentCalls",
            "TakeDepartmentCallsOnly",
            "DoNotAcceptAnyCalls",
            "Unknown",
        }
    ),
    "dndStatusPersonal": frozenset({"TakeAllCalls", "DoNotAcceptAnyCalls", "Unknown"}),
    "telephonyStatus": TELEPHONY_STATUSES,
    "aggregatedTelephonyStatus": TELEPHONY_STATUSES,
    "cxTelephonyStatus": frozenset({"NoCall", "CallConnected"}),
    "meetingStatus": frozenset({"Connected", "Disconnected"}),
}
BOOLEAN_FIELDS: Final = frozenset(
    {"allowSeeMyPresence", "ringOnMonitoredCall", "pickUpCallsOnHold", "acceptCallQueueCalls"}
)
TEXT_FIELDS: Final = frozenset({"message"})
SETTABLE_FIELDS: Final = frozenset(PRESENCE_VALUES) | BOOLEAN_FIELDS | TEXT_FIELDS
# The order GET presence renders fields in, as in reference §3.2.
FIELD_ORDER: Final = (
    "presenceStatus",
    "telephonyStatus",
    "aggregatedTelephonyStatus",
    "cxTelephonyStatus",
    "userStatus",
    "dndStatus",
    "dndStatusPersonal",
    "message",
    "meetingStatus",
    "allowSeeMyPresence",
    "acceptCallQueueCalls",
    "ringOnMonitoredCall",
    "pickUpCallsOnHold",
)

NON_USER_PRESENCE: Final[Mapping[str, Any]] = {
    "presenceStatus": "Offline",
    "meetingStatus": "Disconnected",
    "allowSeeMyPresence": True,
    "ringOnMonitoredCall": False,
    "pickUpCallsOnHold": False,
}
EXTENSION_TYPES: Final = frozenset(
    {
        "User",
        "Department",
        "Announcement",
        "Voicemail",
        "DigitalUser",
        "VirtualUser",
        "FaxUser",
        "PagingOnly",
        "SharedLinesGroup",
        "DelegatedLinesGroup",
        "GroupCallPickup",
        "IvrMenu",
        "ApplicationExtension",
        "ProxyAdmin",
        "RoomConnector",
        "ParkLocation",
        "Limited",
        "Bot",
        "Site",
        "Room",
        "FlexibleUser",
        "TieLine",
        "Unknown",
    }
)
EXTENSION_STATUSES: Final = frozenset(
    {"Enabled", "Disabled", "Frozen", "NotActivated", "Unassigned"}
)

CallState = Literal["ringing", "connected", "hold", "ended"]
CALL_STATES: Final[Mapping[str, str]] = {
    "ringing": "Ringing",
    "connected": "CallConnected",
    "hold": "OnHold",
    "ended": "NoCall",
}
# When calls overlap, the phone shows the most urgent one.
_CALL_PRIORITY: Final = ("Ringing", "CallConnected", "OnHold")
_QUERY_CACHE_SIZE: Final = 64


class DirectoryError(Exception):
    """A control request the account cannot honour (unknown extension, bad field...)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class Call:
    call_id: str
    direction: Literal["Inbound", "Outbound"]
    from_number: str
    from_name: str | None
    to_number: str
    to_name: str | None
    start_time: str
    telephony_status: str
    session_id: str
    party_id: str
    telephony_session_id: str

    def render(self, *, final: bool = False) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "id": self.call_id,
            "direction": self.direction,
            "queueCall": False,
            "from": self.from_number,
        }
        if self.from_name:
            rendered["fromName"] = self.from_name
        rendered["to"] = self.to_number
        if self.to_name:
            rendered["toName"] = self.to_name
        rendered.update(
            {
                "telephonyStatus": self.telephony_status,
                "startTime": self.start_time,
                "sessionId": self.session_id,
                "partyId": self.party_id,
                "telephonySessionId": self.telephony_session_id,
            }
        )
        if final:
            rendered["terminationType"] = "final"
        return rendered


@dataclass(slots=True)
class Extension:
    extension_id: int
    number: str
    type: str
    status: str
    name: str
    first_name: str
    last_name: str
    email: str | None
    business_phone: str | None
    admin: bool
    presence: dict[str, Any]
    calls: list[Call] = field(default_factory=list)
    sequence: int = 0
    record_json: str | None = None
    presence_json: str | None = None
    presence_detailed_json: str | None = None

    @property
    def has_presence(self) -> bool:
        """Only users have presence; every other type always reads Offline."""
        return self.type == "User"

    def invalidate(self) -> None:
        self.record_json = None
        self.presence_json = None
        self.presence_detailed_json = None


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """One presence change of one extension, as every subscriber will hear about it."""

    extension_id: int
    sequence: int
    fields: dict[str, Any]
    """Only the fields that changed."""
    active_calls: list[dict[str, Any]] | None
    """Calls after the change plus the ones it ended; None when no call changed."""
    total_active_calls: int
    presence: dict[str, Any]
    """Every presence field after the change, for full notification bodies."""
    current_calls: list[dict[str, Any]]
    """The calls in progress after the change."""


@dataclass(frozen=True, slots=True)
class ExtensionEvent:
    extension_id: int
    event_type: Literal["Create", "Update", "Delete"]
    hints: tuple[str, ...] = ()


class EventLog:
    """The last few presence changes with the wall-clock time they happened, for latency probes."""

    def __init__(self, size: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._next_id = 1

    def record(self, change: PresenceChange) -> None:
        now = time.time()
        entry: dict[str, Any] = {
            "id": self._next_id,
            "extension_id": change.extension_id,
            "time": now,
            "sequence": change.sequence,
            "fields": dict(change.fields),
        }
        if change.active_calls is not None:
            entry["totalActiveCalls"] = change.total_active_calls
        self._next_id += 1
        self._entries.append(entry)

    def read(
        self, *, after: int = 0, extension_id: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        picked = [
            dict(entry)
            for entry in self._entries
            if entry["id"] > after
            and (extension_id is None or entry["extension_id"] == extension_id)
        ]
        return picked if limit is None else picked[:limit]


def aggregate_presence(presence: Mapping[str, Any]) -> str:
    """presenceStatus as RingCentral derives it from the phone, the user's choice, DND, meetings."""
    if presence.get("telephonyStatus", "NoCall") != "NoCall":
        return "Busy"
    if presence.get("userStatus") == "Offline":
        return "Offline"
    if "DoNotAcceptAnyCalls" in (presence.get("dndStatus"), presence.get("dndStatusPersonal")):
        return "Busy"
    if presence.get("userStatus") == "Busy" or presence.get("meetingStatus") == "Connected":
        return "Busy"
    return "Available"


def _calls_status(calls: Iterable[Call]) -> str:
    statuses = {call.telephony_status for call in calls}
    for status in _CALL_PRIORITY:
        if status in statuses:
            return status
    return "NoCall"


class Directory:
    """Every extension of the one simulated account; all lookups by id are O(1)."""

    def __init__(self, company: Company, *, event_log_size: int = 10_000) -> None:
        self.account_id = company.account_id
        self.company_name = company.domain.split(".")[0].title() + " Inc."
        self._rng = random.Random(company.seed * 7919 + 17)
        self._extensions: dict[int, Extension] = {}
        self._order: list[int] = []
        self._query_cache: dict[tuple[Any, ...], list[int]] = {}
        self._call_counter = 0
        self.events = EventLog(event_log_size)
        for person in company.rc_users:
            assert person.extension_id is not None
            assert person.extension_number is not None
            self._insert(
                Extension(
                    extension_id=person.extension_id,
                    number=person.extension_number,
                    type="User",
                    status=person.extension_status or "Enabled",
                    name=person.name,
                    first_name=person.first_name,
                    last_name=person.last_name,
                    email=person.rc_email,
                    business_phone=self._phone_for(person.extension_number),
                    admin=person.slack_role in ("owner", "admin"),
                    presence=self._initial_presence(person.extension_status == "Disabled"),
                )
            )
        for system in company.system_extensions:
            self._insert(
                Extension(
                    extension_id=system.extension_id,
                    number=system.extension_number,
                    type=system.type,
                    status="Enabled",
                    name=system.name,
                    first_name=system.name,
                    last_name="",
                    email=None,
                    business_phone=None,
                    admin=False,
                    presence=dict(NON_USER_PRESENCE),
                )
            )
        owner = next(
            (e for e in self._extensions.values() if e.has_presence and e.status == "Enabled"),
            None,
        )
        if owner is None:
            raise ValueError("the company needs at least one enabled RingCentral user")
        self.owner_id = owner.extension_id

    # ---- reading -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._order)

    def get(self, extension_id: int) -> Extension | None:
        return self._extensions.get(extension_id)

    def require(self, extension_id: int) -> Extension:
        extension = self._extensions.get(extension_id)
        if extension is None:
            raise DirectoryError(f"extension {extension_id} not found", status=404)
        return extension

    def all_ids(self) -> Sequence[int]:
        return self._order

    def query(
        self,
        *,
        types: frozenset[str] | None = None,
        statuses: frozenset[str] | None = None,
        numbers: frozenset[str] | None = None,
        emails: frozenset[str] | None = None,
    ) -> Sequence[int]:
        """Ids matching every given filter, in listing order; cached until the directory changes."""
        if types is None and statuses is None and numbers is None and emails is None:
            return self._order
        key = (types, statuses, numbers, emails)
        cached = self._query_cache.get(key)
        if cached is not None:
            return cached
        lowered = frozenset(e.lower() for e in emails) if emails is not None else None
        matched = [
            ext_id
            for ext_id in self._order
            if self._matches(self._extensions[ext_id], types, statuses, numbers, lowered)
        ]
        if len(self._query_cache) >= _QUERY_CACHE_SIZE:
            self._query_cache.pop(next(iter(self._query_cache)))
        self._query_cache[key] = matched
        return matched

    @staticmethod
    def _matches(
        extension: Extension,
        types: frozenset[str] | None,
        statuses: frozenset[str] | None,
        numbers: frozenset[str] | None,
        emails: frozenset[str] | None,
    ) -> bool:
        if types is not None and extension.type not in types:
            return False
        if statuses is not None and extension.status not in statuses:
            return False
        if numbers is not None and extension.number not in numbers:
            return False
        return emails is None or (extension.email or "").lower() in emails

    def record_json(self, extension: Extension) -> str:
        """The extension's list/detail record (with BASE markers), rendered once per change."""
        if extension.record_json is None:
            extension.record_json = dumps(self._render_record(extension))
        return extension.record_json

    def presence_json(self, extension: Extension, *, detailed: bool) -> str:
        """The extension's presence record (with BASE markers), rendered once per change."""
        if detailed:
            if extension.presence_detailed_json is None:
                extension.presence_detailed_json = dumps(self.render_presence(extension, True))
            return extension.presence_detailed_json
        if extension.presence_json is None:
            extension.presence_json = dumps(self.render_presence(extension, False))
        return extension.presence_json

    def extension_uri(self, extension_id: int) -> str:
        return f"{BASE}/restapi/v1.0/account/{self.account_id}/extension/{extension_id}"

    def _render_record(self, extension: Extension) -> dict[str, Any]:
        uri = self.extension_uri(extension.extension_id)
        contact: dict[str, Any] = {"firstName": extension.first_name}
        if extension.last_name:
            contact["lastName"] = extension.last_name
        contact["company"] = self.company_name
        if extension.email:
            contact["email"] = extension.email
        if extension.business_phone:
            contact["businessPhone"] = extension.business_phone
        if extension.email:
            contact["emailAsLoginName"] = True
        record: dict[str, Any] = {
            "uri": uri,
            "id": extension.extension_id,
            "extensionNumber": extension.number,
            "contact": contact,
            "name": extension.name,
            "type": extension.type,
            "status": extension.status,
        }
        if extension.has_presence:
            record["permissions"] = {
                "admin": {"enabled": extension.admin},
                "internationalCalling": {"enabled": False},
            }
            record["profileImage"] = {"uri": uri + "/profile-image"}
        record["hidden"] = False
        return record

    def render_presence(self, extension: Extension, detailed: bool) -> dict[str, Any]:
        uri = self.extension_uri(extension.extension_id)
        rendered: dict[str, Any] = {
            "uri": uri + "/presence",
            "extension": {
                "uri": uri,
                "id": extension.extension_id,
                "extensionNumber": extension.number,
            },
        }
        if not extension.has_presence:
            # SPEC: always Offline, and telephonyStatus, message, userStatus, dndStatus omitted.
            rendered.update(NON_USER_PRESENCE)
            return rendered
        for name in FIELD_ORDER:
            if name in extension.presence:
                rendered[name] = extension.presence[name]
        if detailed:
            rendered["activeCalls"] = [call.render() for call in extension.calls]
            rendered["totalActiveCalls"] = len(extension.calls)
        return rendered

    # ---- presence and calls --------------------------------------------------------------------

    def set_presence(self, extension_id: int, fields: Mapping[str, Any]) -> PresenceChange | None:
        """Apply any subset of presence fields; None when nothing actually changed."""
        extension = self._require_presence(extension_id)
        for name, value in fields.items():
            self._validate_field(name, value)
        updated = dict(extension.presence)
        updated.update(fields)
        if "telephonyStatus" in fields and "aggregatedTelephonyStatus" not in fields:
            updated["aggregatedTelephonyStatus"] = fields["telephonyStatus"]
        if "presenceStatus" not in fields:
            updated["presenceStatus"] = aggregate_presence(updated)
        return self._commit(extension, updated, calls_changed=False, ended=())

    def call(
        self,
        extension_id: int,
        state: str,
        *,
        call_id: str | None = None,
        direction: Literal["Inbound", "Outbound"] = "Inbound",
        peer_number: str | None = None,
        peer_name: str | None = None,
    ) -> tuple[PresenceChange | None, str]:
        """Move a call of this extension to `state`; returns the change and the call's id."""
        if state not in CALL_STATES:
            raise DirectoryError(f"state must be one of {sorted(CALL_STATES)}")
        if direction not in ("Inbound", "Outbound"):
            raise DirectoryError("direction must be Inbound or Outbound")
        extension = self._require_presence(extension_id)
        status = CALL_STATES[state]
        target = self._find_call(extension, call_id)
        if target is None:
            if state in ("hold", "ended") or call_id is not None:
                raise DirectoryError(f"extension {extension_id} has no such active call")
            target = self._new_call(extension, direction, peer_number, peer_name, status)
            extension.calls.append(target)
        elif state == "ringing" and call_id is None:
            target = self._new_call(extension, direction, peer_number, peer_name, status)
            extension.calls.append(target)
        target.telephony_status = status
        ended: tuple[Call, ...] = ()
        if state == "ended":
            extension.calls.remove(target)
            ended = (target,)
        updated = dict(extension.presence)
        telephony = _calls_status(extension.calls)
        updated["telephonyStatus"] = telephony
        updated["aggregatedTelephonyStatus"] = telephony
        updated["presenceStatus"] = aggregate_presence(updated)
        return self._commit(extension, updated, calls_changed=True, ended=ended), target.call_id

    def _find_call(self, extension: Extension, call_id: str | None) -> Call | None:
        if call_id is not None:
            return next((c for c in extension.calls if c.call_id == call_id), None)
        return extension.calls[-1] if extension.calls else None

    def _new_call(
        self,
        extension: Extension,
        direction: Literal["Inbound", "Outbound"],
        peer_number: str | None,
        peer_name: str | None,
        status: str,
    ) -> Call:
        self._call_counter += 1
        counter = self._call_counter
        peer = peer_number or f"+1415555{self._rng.randrange(10_000):04d}"
        own = extension.business_phone or f"+1650555{int(extension.number) % 10_000:04d}"
        incoming = direction == "Inbound"
        session = f"{17_000_000_000 + counter}"
        return Call(
            call_id=f"{self._rng.getrandbits(128):032x}",
            direction=direction,
            from_number=peer if incoming else own,
            from_name=peer_name if incoming else extension.name,
            to_number=own if incoming else peer,
            to_name=extension.name if incoming else peer_name,
            start_time=iso_millis(),
            telephony_status=status,
            session_id=session,
            party_id=f"cs{self._rng.getrandbits(60)}-{counter}",
            telephony_session_id=f"s-{self._rng.getrandbits(96):024x}",
        )

    def _commit(
        self,
        extension: Extension,
        updated: dict[str, Any],
        *,
        calls_changed: bool,
        ended: tuple[Call, ...],
    ) -> PresenceChange | None:
        changed = {k: v for k, v in updated.items() if extension.presence.get(k) != v}
        if not changed and not calls_changed:
            return None
        extension.presence = updated
        extension.sequence += 1
        extension.presence_json = None
        extension.presence_detailed_json = None
        current_calls = [call.render() for call in extension.calls]
        active_calls: list[dict[str, Any]] | None = None
        if calls_changed:
            active_calls = list(current_calls)
            active_calls.extend(call.render(final=True) for call in ended)
        change = PresenceChange(
            extension_id=extension.extension_id,
            sequence=extension.sequence,
            fields=changed,
            active_calls=active_calls,
            total_active_calls=len(extension.calls),
            presence=dict(updated),
            current_calls=current_calls,
        )
        self.events.record(change)
        return change

    def _require_presence(self, extension_id: int) -> Extension:
        extension = self.require(extension_id)
        if not extension.has_presence:
            raise DirectoryError(
                f"extension {extension_id} is a {extension.type}; its presence is always Offline"
            )
        return extension

    @staticmethod
    def _validate_field(name: str, value: Any) -> None:
        if name not in SETTABLE_FIELDS:
            raise DirectoryError(f"unknown presence field {name!r}")
        if name in PRESENCE_VALUES and value not in PRESENCE_VALUES[name]:
            allowed = ", ".join(sorted(PRESENCE_VALUES[name]))
            raise DirectoryError(f"{name} must be one of: {allowed}")
        if name in BOOLEAN_FIELDS and not isinstance(value, bool):
            raise DirectoryError(f"{name} must be a boolean")
        if name in TEXT_FIELDS and not isinstance(value, str):
            raise DirectoryError(f"{name} must be a string")

    # ---- membership ----------------------------------------------------------------------------

    def add_user(
        self,
        *,
        first_name: str,
        last_name: str,
        email: str,
        extension_number: str | None = None,
        status: str = "Enabled",
    ) -> ExtensionEvent:
        if status not in EXTENSION_STATUSES:
            raise DirectoryError(f"status must be one of {sorted(EXTENSION_STATUSES)}")
        if not first_name or not email or "@" not in email:
            raise DirectoryError("firstName and a valid email are required")
        number = extension_number or self._next_number()
        if not number.isdigit():
            raise DirectoryError("extensionNumber must be digits")
        extension_id = self.account_id + 1000 * int(number) + 1
        while extension_id in self._extensions:
            extension_id += 10
        name = f"{first_name} {last_name}".strip()
        self._insert(
            Extension(
                extension_id=extension_id,
                number=number,
                type="User",
                status=status,
                name=name,
                first_name=first_name,
                last_name=last_name,
                email=email,
                business_phone=self._phone_for(number),
                admin=False,
                presence=self._initial_presence(status != "Enabled", vary=False),
            )
        )
        return ExtensionEvent(extension_id, "Create")

    def set_status(self, extension_id: int, status: str) -> ExtensionEvent | None:
        if status not in EXTENSION_STATUSES:
            raise DirectoryError(f"status must be one of {sorted(EXTENSION_STATUSES)}")
        extension = self.require(extension_id)
        if extension.status == status:
            return None
        extension.status = status
        extension.invalidate()
        self._query_cache.clear()
        return ExtensionEvent(extension_id, "Update", ("ExtensionInfo",))

    def delete(self, extension_id: int) -> ExtensionEvent:
        self.require(extension_id)
        del self._extensions[extension_id]
        self._order.remove(extension_id)
        self._query_cache.clear()
        return ExtensionEvent(extension_id, "Delete")

    def _insert(self, extension: Extension) -> None:
        self._extensions[extension.extension_id] = extension
        self._order.append(extension.extension_id)
        self._query_cache.clear()

    def _next_number(self) -> str:
        numbers = [int(e.number) for e in self._extensions.values() if e.has_presence]
        return str(max(numbers, default=100) + 1)

    @staticmethod
    def _phone_for(number: str) -> str:
        return f"+1650555{int(number) % 10_000:04d}"

    def _initial_presence(self, disabled: bool, *, vary: bool = True) -> dict[str, Any]:
        user_status, dnd = "Available", "TakeAllCalls"
        roll = self._rng.random() if vary else 1.0
        if disabled or roll < 0.06:
            user_status = "Offline"
        elif roll < 0.10:
            dnd = "DoNotAcceptAnyCalls"
        elif roll < 0.13:
            user_status = "Busy"
        presence: dict[str, Any] = {
            "telephonyStatus": "NoCall",
            "aggregatedTelephonyStatus": "NoCall",
            "userStatus": user_status,
            "dndStatus": dnd,
            "meetingStatus": "Disconnected",
            "allowSeeMyPresence": True,
            "ringOnMonitoredCall": False,
            "pickUpCallsOnHold": False,
        }
        presence["presenceStatus"] = aggregate_presence(presence)
        return presence
