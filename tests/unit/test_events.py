"""Parsing RingCentral notifications and presence records, on the documented payloads."""

from __future__ import annotations

import copy
import traceback
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bot.presence import (
    Availability,
    CallDirection,
    CallParty,
    CallSummary,
    DndStatus,
    MeetingStatus,
    PresenceBook,
    PresenceStatus,
    PresenceUpdate,
    TelephonyStatus,
    UpdateSource,
)
from bot.ringcentral.events import (
    ExtensionChange,
    ExtensionEventType,
    ExtensionListChange,
    MalformedPayload,
    parse_notification,
    parse_presence_record,
    parse_timestamp,
)

RECEIVED = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)

# reference/ringcentral.md §4.2: DG code-samples/events/detailed-extension-presence.json, verbatim.
DETAILED_PRESENCE_EVENT: dict[str, Any] = {
    "uuid": "045b81dc-9f73-4864-84de-08aa6324a7f5",
    "event": "/restapi/v1.0/account/~/extension/6610372004/presence?detailedTelephonyState=true",
    "timestamp": "2016-02-18T09:37:24.597Z",
    "subscriptionId": "9d38419f-645f-4ee3-a053-8cf1368c21c4",
    "ownerId": "6610372004",
    "body": {
        "extensionId": "6610372004",
        "telephonyStatus": "CallConnected",
        "activeCalls": [
            {
                "id": "39247ebfdc324e3b96d7519672aec3e4",
                "direction": "Inbound",
                "queueCall": True,
                "from": "+18775380038",
                "fromName": "John Wang",
                "to": "+18445810019",
                "telephonyStatus": "CallConnected",
                "startTime": "2016-02-18T09:37:24.322Z",
                "sessionId": "17133704004",
                "partyId": "cs171843418296416309-2",
                "telephonySessionId": "Y3MxNjk4ODA5MTYxMzUyOTU5OUAxMC4zMi40NS44NA",
            },
            {
                "id": "39247ebfdc324e3b96d7519672aec3e5",
                "direction": "Outbound",
                "queueCall": False,
                "from": "+18776480025",
                "to": "+18445654321",
                "startTime": "2016-02-18T09:37:24.322Z",
                "telephonyStatus": "NoCall",
                "sessionId": "17133804005",
                "partyId": "cs671843418296416309-2",
                "telephonySessionId": "Y3MxNjytruODA5MTYxMzUyOTU5OUAxMC4zMi40NS44NA",
            },
        ],
        "sequence": 2698,
        "presenceStatus": "Busy",
        "userStatus": "Available",
        "meetingStatus": "Disconnected",
        "dndStatus": "TakeAllCalls",
        "allowSeeMyPresence": True,
        "ringOnMonitoredCall": False,
        "pickUpCallsOnHold": False,
        "totalActiveCalls": 2,
    },
}
PHONE_DETAILS = ("+18775380038", "+18445810019", "+18776480025", "+18445654321", "John Wang")

# reference/ringcentral.md §5.3: the body element of the composite ServerNotification.
SERVER_NOTIFICATION_BODY: dict[str, Any] = {
    "uuid": "2661273919712564939",
    "event": "/restapi/v1.0/account/809646016/extension/62264425016/presence",
    "timestamp": "2025-08-20T22:30:00.000Z",
    "subscriptionId": "1b2a2e6b-2245-4278-b47c-16259ca003a8",
    "ownerId": "62264425016",
    "body": {
        "extensionId": "62264425016",
        "telephonyStatus": "Ringing",
        "sequence": 12,
        "presenceStatus": "Busy",
        "userStatus": "Available",
        "dndStatus": "TakeAllCalls",
        "meetingStatus": "Disconnected",
    },
}

# reference/ringcentral.md §3.2: one page of GET /restapi/v1.0/account/~/presence.
ACCOUNT_PRESENCE_PAGE: dict[str, Any] = {
    "uri": "https://platform.ringcentral.com/restapi/v1.0/account/248111004/presence?page=1&perPage=1000",
    "records": [
        {
            "uri": "https://platform.ringcentral.com/restapi/v1.0/account/248111004/extension/248111004/presence",
            "extension": {
                "uri": "https://platform.ringcentral.com/restapi/v1.0/account/248111004/extension/248111004",
                "id": 248111004,
                "extensionNumber": "101",
            },
            "presenceStatus": "Available",
            "telephonyStatus": "NoCall",
            "userStatus": "Available",
            "dndStatus": "TakeAllCalls",
            "meetingStatus": "Disconnected",
            "allowSeeMyPresence": True,
            "ringOnMonitoredCall": False,
            "pickUpCallsOnHold": False,
        }
    ],
    "paging": {
        "page": 1,
        "perPage": 1000,
        "pageStart": 0,
        "pageEnd": 0,
        "totalPages": 1,
        "totalElements": 1,
    },
    "navigation": {"firstPage": {"uri": "..."}, "lastPage": {"uri": "..."}},
}

# DG code-samples/events/extension-list.json.
EXTENSION_LIST_EVENT: dict[str, Any] = {
    "timestamp": "2014-04-29T14:29:27.408+0000",
    "subscriptionId": "a45645-0001-cc71-9de3-674476722",
    "ownerId": "1500723004",
    "uuid": "b11c9430-9687-4498-b12b-3fcb470bfe04",
    "event": "/restapi/v1.0/account/~/extension",
    "body": {
        "extensions": [
            {"extensionId": "74953947939", "eventType": "Delete"},
            {"extensionId": "8798797945", "eventType": "Create"},
            {
                "extensionId": "8475874957",
                "eventType": "Update",
                "hints": ["ExtensionInfo", "CompanyNumbers"],
            },
        ]
    },
}

# DG code-samples/events/extension-dnd-status.json (the /presence/dnd filter).
DND_ONLY_EVENT: dict[str, Any] = {
    "uuid": "045b81dc-9f73-4864-84de-08aa6324a7f5",
    "event": "/restapi/v1.0/account/6610372004/extension/6610372004/presence/dnd",
    "timestamp": "2021-02-18T09:37:24.597Z",
    "ownerId": "6610372004",
    "body": {"extensionId": "6610372004", "dndStatus": "DoNotAcceptAnyCalls"},
}


def presence_event(**body: object) -> dict[str, Any]:
    """An account-presence notification for extension 101 carrying exactly `body`."""
    return {
        "uuid": "c0ffee00-0000-4000-8000-000000000001",
        "event": "/restapi/v1.0/account/1/extension/101/presence",
        "timestamp": "2026-03-02T14:30:00.000Z",
        "subscriptionId": "sub-1",
        "ownerId": "1",
        "body": {"extensionId": "101", **body},
    }


def parse_update(envelope: object) -> PresenceUpdate:
    parsed = parse_notification(envelope, received_at=RECEIVED)
    assert isinstance(parsed, PresenceUpdate)
    return parsed


def classify_alone(update: PresenceUpdate) -> Availability:
    book = PresenceBook()
    book.apply(update)
    presence = book.get(update.extension_id)
    assert presence is not None
    return presence.availability


def test_detailed_presence_event_keeps_call_facts_but_no_numbers_or_names() -> None:
    update = parse_update(DETAILED_PRESENCE_EVENT)

    assert update == PresenceUpdate(
        extension_id="6610372004",
        source=UpdateSource.EVENT,
        received_at=RECEIVED,
        sequence=2698,
        uuid="045b81dc-9f73-4864-84de-08aa6324a7f5",
        presence_status=PresenceStatus.BUSY,
        user_status=PresenceStatus.AVAILABLE,
        telephony_status=TelephonyStatus.CALL_CONNECTED,
        dnd_status=DndStatus.TAKE_ALL_CALLS,
        meeting_status=MeetingStatus.DISCONNECTED,
        allow_see_my_presence=True,
        calls=CallSummary(
            count=2,
            connected_since=datetime(2016, 2, 18, 9, 37, 24, 322000, tzinfo=UTC),
            direction=CallDirection.INBOUND,
        ),
    )
    assert classify_alone(update) is Availability.ON_CALL
    text = repr(update) + str(update)
    assert not [detail for detail in PHONE_DETAILS if detail in text]


def test_server_notification_body_is_a_ringing_event_with_its_sequence() -> None:
    update = parse_update(SERVER_NOTIFICATION_BODY)

    assert update.extension_id == "62264425016"
    assert update.sequence == 12
    assert update.uuid == "2661273919712564939"
    assert update.telephony_status is TelephonyStatus.RINGING
    assert update.calls is None
    assert update.fields_present() == (
        "presence_status",
        "user_status",
        "telephony_status",
        "dnd_status",
        "meeting_status",
    )
    assert classify_alone(update) is Availability.RINGING


def test_account_presence_record_is_a_full_snapshot_without_sequence() -> None:
    received = datetime(2026, 3, 2, 16, 30, tzinfo=timezone(timedelta(hours=2)))
    [record] = ACCOUNT_PRESENCE_PAGE["records"]

    update = parse_presence_record(record, received_at=received)

    assert update == PresenceUpdate(
        extension_id="248111004",
        source=UpdateSource.SNAPSHOT,
        received_at=RECEIVED,
        presence_status=PresenceStatus.AVAILABLE,
        user_status=PresenceStatus.AVAILABLE,
        telephony_status=TelephonyStatus.NO_CALL,
        dnd_status=DndStatus.TAKE_ALL_CALLS,
        meeting_status=MeetingStatus.DISCONNECTED,
        allow_see_my_presence=True,
    )
    assert update.received_at.tzinfo is UTC
    assert classify_alone(update) is Availability.AVAILABLE


def test_per_extension_record_without_extension_uses_the_requested_id() -> None:
    record = {"presenceStatus": "Busy", "telephonyStatus": "OnHold", "userStatus": "Busy"}

    update = parse_presence_record(record, received_at=RECEIVED, extension_id=62264425016)

    assert update.extension_id == "62264425016"
    assert classify_alone(update) is Availability.ON_CALL


def test_record_for_another_extension_than_requested_is_malformed() -> None:
    [record] = ACCOUNT_PRESENCE_PAGE["records"]
    with pytest.raises(MalformedPayload, match="another extension"):
        parse_presence_record(record, received_at=RECEIVED, extension_id="101")


def test_non_user_extension_record_is_offline() -> None:
    # Departments, IVR menus...: presenceStatus is always Offline and the other fields are omitted.
    record = {
        "extension": {"id": 1201056008, "extensionNumber": "110"},
        "presenceStatus": "Offline",
    }

    update = parse_presence_record(record, received_at=RECEIVED)

    assert update.fields_present() == ("presence_status",)
    assert classify_alone(update) is Availability.OFFLINE


def test_extension_list_event_lists_each_change() -> None:
    parsed = parse_notification(EXTENSION_LIST_EVENT, received_at=RECEIVED)

    assert parsed == ExtensionListChange(
        changes=(
            ExtensionChange("74953947939", ExtensionEventType.DELETE),
            ExtensionChange("8798797945", ExtensionEventType.CREATE),
            ExtensionChange(
                "8475874957", ExtensionEventType.UPDATE, ("ExtensionInfo", "CompanyNumbers")
            ),
        ),
        uuid="b11c9430-9687-4498-b12b-3fcb470bfe04",
        received_at=RECEIVED,
    )


def test_extension_info_event_is_a_single_change_not_presence() -> None:
    # The per-extension info filter carries extensionId too; eventType is what tells them apart.
    envelope = {
        "uuid": "u-1",
        "event": "/restapi/v1.0/account/~/extension/101",
        "body": {"extensionId": "101", "eventType": "Update", "hints": ["ExtensionInfo"]},
    }

    parsed = parse_notification(envelope, received_at=RECEIVED)

    assert parsed == ExtensionListChange(
        changes=(ExtensionChange("101", ExtensionEventType.UPDATE, ("ExtensionInfo",)),),
        uuid="u-1",
        received_at=RECEIVED,
    )


def test_dnd_only_event_carries_only_dnd() -> None:
    update = parse_update(DND_ONLY_EVENT)

    assert update.fields_present() == ("dnd_status",)
    assert update.sequence is None


def test_partial_event_carries_only_what_changed() -> None:
    update = parse_update(presence_event(telephonyStatus="NoCall", sequence=7))

    assert update.fields_present() == ("telephony_status",)
    assert update.telephony_status is TelephonyStatus.NO_CALL
    assert update.sequence == 7


def test_explicit_null_counts_as_absent() -> None:
    update = parse_update(presence_event(telephonyStatus=None, meetingStatus="Connected"))

    assert update.fields_present() == ("meeting_status",)


def test_routing_ignores_the_event_uri() -> None:
    envelope = presence_event(telephonyStatus="Ringing")
    envelope["event"] = "/restapi/v1.0/account/~/extension"

    assert parse_update(envelope).telephony_status is TelephonyStatus.RINGING


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"presenceStatus": "Available", "telephonyStatus": "NoCall", "userStatus": "Available"},
            Availability.AVAILABLE,
        ),
        ({"presenceStatus": "Busy", "telephonyStatus": "Ringing"}, Availability.RINGING),
        ({"presenceStatus": "Busy", "telephonyStatus": "CallConnected"}, Availability.ON_CALL),
        ({"presenceStatus": "Busy", "telephonyStatus": "OnHold"}, Availability.ON_CALL),
        ({"presenceStatus": "Available", "meetingStatus": "Connected"}, Availability.IN_MEETING),
        ({"presenceStatus": "Available", "dndStatus": "DoNotAcceptAnyCalls"}, Availability.DND),
        (
            {"presenceStatus": "Available", "dndStatusPersonal": "DoNotAcceptAnyCalls"},
            Availability.DND,
        ),
        ({"presenceStatus": "Busy", "userStatus": "Busy"}, Availability.BUSY),
        ({"presenceStatus": "Available", "telephonyStatus": "ParkedCall"}, Availability.BUSY),
        ({"presenceStatus": "Offline", "userStatus": "Offline"}, Availability.OFFLINE),
        (
            {
                "presenceStatus": "Busy",
                "telephonyStatus": "CallConnected",
                "allowSeeMyPresence": False,
            },
            Availability.HIDDEN,
        ),
        (
            {"presenceStatus": "Busy", "aggregatedTelephonyStatus": "CallConnected"},
            Availability.ON_CALL,
        ),
    ],
)
def test_every_availability_class_from_a_notification(
    body: dict[str, object], expected: Availability
) -> None:
    assert classify_alone(parse_update(presence_event(**body))) is expected


@pytest.mark.parametrize(
    "text",
    [
        "2020-09-07T21:50:02.737+0000",
        "2020-09-07T21:50:02.737Z",
        "2020-09-07T21:50:02.737+00:00",
        "2020-09-07T23:50:02.737+0200",
    ],
)
def test_timestamps_in_every_ringcentral_form_become_utc(text: str) -> None:
    parsed = parse_timestamp(text, "startTime")

    assert parsed == datetime(2020, 9, 7, 21, 50, 2, 737000, tzinfo=UTC)
    assert parsed.tzinfo is UTC


def test_notification_received_at_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_notification(SERVER_NOTIFICATION_BODY, received_at=datetime(2026, 3, 2, 14, 30))


def with_body(**changes: object) -> dict[str, Any]:
    """The detailed event with body fields replaced (a value of ... deletes the field)."""
    envelope = copy.deepcopy(DETAILED_PRESENCE_EVENT)
    for key, value in changes.items():
        if value is ...:
            del envelope["body"][key]
        else:
            envelope["body"][key] = value
    return envelope


def with_first_call(**changes: object) -> dict[str, Any]:
    envelope = copy.deepcopy(DETAILED_PRESENCE_EVENT)
    envelope["body"]["activeCalls"][0].update(changes)
    return envelope


MALFORMED: list[tuple[str, object]] = [
    ("a string", "not-json"),
    ("an empty object", {}),
    ("an empty list", []),
    ("None", None),
    ("a list envelope", [DETAILED_PRESENCE_EVENT]),
    ("body not an object", {**DETAILED_PRESENCE_EVENT, "body": "+18775380038"}),
    ("uuid not a string", {**DETAILED_PRESENCE_EVENT, "uuid": 18775380038}),
    ("body without extensionId", with_body(extensionId=...)),
    ("extensionId empty", with_body(extensionId="")),
    ("extensionId not digits", with_body(extensionId="+18775380038x")),
    ("extensionId a bool", with_body(extensionId=True)),
    ("extensionId a float", with_body(extensionId=6610372004.0)),
    ("negative sequence", with_body(sequence=-1)),
    ("string sequence", with_body(sequence="2698")),
    ("float sequence", with_body(sequence=2698.0)),
    ("bool sequence", with_body(sequence=True)),
    ("numeric telephonyStatus", with_body(telephonyStatus=2)),
    ("string allowSeeMyPresence", with_body(allowSeeMyPresence="false")),
    ("activeCalls not a list", with_body(activeCalls={"from": "+18775380038"})),
    ("activeCalls item not an object", with_body(activeCalls=["+18775380038"])),
    ("phone number as startTime", with_first_call(startTime="+18775380038")),
    ("startTime without offset", with_first_call(startTime="2016-02-18T09:37:24.322")),
    ("numeric startTime", with_first_call(startTime=18775380038)),
    ("negative totalActiveCalls", with_body(totalActiveCalls=-2)),
    ("extensions not a list", {"uuid": "u", "body": {"extensions": {"extensionId": "1"}}}),
    ("extensions item not an object", {"uuid": "u", "body": {"extensions": ["+18775380038"]}}),
    (
        "unknown eventType",
        {"uuid": "u", "body": {"extensions": [{"extensionId": "1", "eventType": "Moved"}]}},
    ),
    ("missing eventType", {"uuid": "u", "body": {"extensions": [{"extensionId": "1"}]}}),
    (
        "hints not strings",
        {
            "uuid": "u",
            "body": {"extensions": [{"extensionId": "1", "eventType": "Update", "hints": [1]}]},
        },
    ),
]


UNKNOWN_VALUES: list[tuple[str, object, str]] = [
    ("unknown telephonyStatus", with_body(telephonyStatus="Dialing"), "telephony_status"),
    ("unknown presenceStatus", with_body(presenceStatus="Away"), "presence_status"),
    (
        "department value in dndStatusPersonal",
        with_body(dndStatusPersonal="TakeDepartmentCallsOnly"),
        "dnd_status_personal",
    ),
    ("unknown meetingStatus", with_body(meetingStatus="+18775380038"), "meeting_status"),
]


@pytest.mark.parametrize(
    ("case", "envelope", "field"), UNKNOWN_VALUES, ids=[case for case, _, _ in UNKNOWN_VALUES]
)
def test_a_value_ringcentral_added_later_is_ignored_and_the_rest_applies(
    case: str, envelope: object, field: str
) -> None:
    update = parse_notification(envelope, received_at=RECEIVED)
    assert isinstance(update, PresenceUpdate), case
    assert getattr(update, field) is None
    assert update.sequence == 2698  # the rest of the event still counts
    assert "+1877" not in repr(update)


def test_unknown_call_fields_are_ignored_without_losing_the_call() -> None:
    for envelope in (
        with_first_call(direction="John Wang"),
        with_first_call(telephonyStatus="+18445810019"),
    ):
        update = parse_notification(envelope, received_at=RECEIVED)
        assert isinstance(update, PresenceUpdate)
        assert update.calls is not None
        assert "John Wang" not in repr(update)
        assert "+1844" not in repr(update)


@pytest.mark.parametrize(("case", "envelope"), MALFORMED, ids=[case for case, _ in MALFORMED])
def test_malformed_notifications_raise_one_error_without_payload_details(
    case: str, envelope: object
) -> None:
    with pytest.raises(MalformedPayload) as caught:
        parse_notification(envelope, received_at=RECEIVED)

    rendered = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
    assert not [detail for detail in PHONE_DETAILS if detail in rendered], case
    assert caught.value.reason == str(caught.value)
    assert len(caught.value.reason) < 80


@pytest.mark.parametrize(
    "record",
    [
        "not-json",
        [],
        None,
        {},
        {"extension": "248111004"},
        {"extension": {"id": "+18775380038x"}},
        {"extension": {"id": 1}, "telephonyStatus": 2},
    ],
)
def test_malformed_presence_records_raise_the_same_error(record: object) -> None:
    with pytest.raises(MalformedPayload):
        parse_presence_record(record, received_at=RECEIVED)


def test_a_page_of_records_feeds_a_book() -> None:
    book = PresenceBook()
    for record in ACCOUNT_PRESENCE_PAGE["records"]:
        book.apply(parse_presence_record(record, received_at=RECEIVED))
    book.apply(parse_update(SERVER_NOTIFICATION_BODY))

    assert len(book) == 2
    presence = book.get("248111004")
    assert presence is not None
    assert presence.availability is Availability.AVAILABLE


def test_the_other_party_says_internal_or_external_and_is_not_kept() -> None:
    # The sample's connected call is inbound from +18775380038: its `from` is the other party.
    colleague = {"+18775380038"}
    internal = parse_notification(
        DETAILED_PRESENCE_EVENT, received_at=RECEIVED, internal_number=colleague.__contains__
    )
    external = parse_notification(
        DETAILED_PRESENCE_EVENT, received_at=RECEIVED, internal_number=set().__contains__
    )
    assert isinstance(internal, PresenceUpdate)
    assert isinstance(external, PresenceUpdate)
    assert internal.calls is not None
    assert external.calls is not None
    assert internal.calls.party is CallParty.INTERNAL
    assert external.calls.party is CallParty.EXTERNAL
    assert "8775380038" not in repr(internal)
    # Without a way to tell, nothing is claimed.
    unknown = parse_update(DETAILED_PRESENCE_EVENT).calls
    assert unknown is not None
    assert unknown.party is None
