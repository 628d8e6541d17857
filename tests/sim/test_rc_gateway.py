"""The simulated WebSocket gateway, driven by a raw `websockets` client following reference §5."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import websockets
from websockets.protocol import State

from bot.sim.company import build_company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral import RingCentralSimulator
from tests.helpers import wait_until
from tests.sim.rc_shapes import assert_frame_shape, assert_same_shape
from tests.sim.rc_support import GatewayClient, ManualClock, Rest

ACCOUNT_PRESENCE = "/restapi/v1.0/account/~/presence"
SUBSCRIPTION = "/restapi/v1.0/subscription"
RATE_HEADERS = frozenset(
    {"X-Rate-Limit-Group", "X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Window"}
)

# Reference §5.3 (DG connection-details.json), verbatim.
CONNECTION_DETAILS_EXAMPLE = json.loads("""
[
  {
    "type": "ConnectionDetails",
    "messageId": "156eec30-xxxx-xxxx-xxxx-005056bf7145",
    "status": 200,
    "wsc": { "token": "RTFhRG5nfExxxxxxxxxxxcHE3bXkyRURQVQ", "sequence": 1 },
    "headers": { "RCRequestId": "156eec30-xxxx-xxxx-xxxx-005056bf7145" }
  },
  {
    "creationTime": "2020-09-07T21:50:02.737+0000",
    "maxConnectionsPerSession": 50,
    "recoveryBufferSize": 100,
    "recoveryTimeout": 180,
    "idleTimeout": 1800,
    "absoluteTimeout": 86400,
    "maxActiveRequests": 10
  }
]
""")

# Reference §5.3 (WIDGETS connectionDetails.json capture of a failed recovery), verbatim.
RECOVERY_DETAILS_EXAMPLE = json.loads("""
[
  { "type": "ConnectionDetails", "messageId": "4cc688a8-db2a-11eb-a334-005056be4c3c", "status": 200,
    "wsc": { "token": "SEhiQTh3fEJx...", "sequence": 1 },
    "headers": { "RCRequestId": "4cc688a8-db2a-11eb-a334-005056be4c3c" } },
  { "creationTime": "2021-07-02T11:40:28.805+0000", "recoveryState": "Failed", "recoveryErrorCode": "WSG-1005",
    "maxConnectionsPerSession": 50, "recoveryBufferSize": 100, "recoveryTimeout": 180,
    "idleTimeout": 1800, "absoluteTimeout": 86400, "maxActiveRequests": 10 }
]
""")  # noqa: E501

# Reference §5.4 (the 2025-08-20 capture), verbatim.
SUBSCRIPTION_RESPONSE_EXAMPLE = json.loads("""
[{"type": "ClientRequest", "messageId": "29588305-dd9b-4bc4-8d61-4bb7957f2f2f", "status": 200,
  "headers": {"Server": "nginx", "Date": "Wed, 20 Aug 2025 22:23:55 GMT", "Content-Type": "application/json",
              "RoutingKey": "SJC01P07", "RCRequestId": "bedff5ae-9d68-4bc9-8653-7e34603ef562-2686696-1-19"}},
 {"uri": "/restapi/v1.0/subscription/1b2a2e6b-2245-4278-b47c-16259ca003a8",
  "id": "1b2a2e6b-2245-4278-b47c-16259ca003a8", "creationTime": "2025-08-20T22:23:55.169Z", "status": "Active",
  "eventFilters": ["/restapi/v1.0/account/809646016/extension/62264425016/presence"],
  "expirationTime": "2025-08-21T22:23:55.169Z", "expiresIn": 86399,
  "deliveryMode": {"transportType": "WebSocket", "encryption": false}}]
""")  # noqa: E501

# Reference §5.3 (ServerNotification), verbatim.
NOTIFICATION_EXAMPLE = json.loads("""
[
  { "type": "ServerNotification", "messageId": "2661273919712564939", "status": 200,
    "headers": { "RCRequestId": "265348d0-xxxx-xxxx-xxxx-005056a62c0c" } },
  { "uuid": "2661273919712564939",
    "event": "/restapi/v1.0/account/809646016/extension/62264425016/presence",
    "timestamp": "2025-08-20T22:30:00.000Z",
    "subscriptionId": "1b2a2e6b-2245-4278-b47c-16259ca003a8",
    "ownerId": "62264425016",
    "body": { "extensionId": "62264425016", "telephonyStatus": "Ringing", "sequence": 12,
              "presenceStatus": "Busy", "userStatus": "Available", "dndStatus": "TakeAllCalls",
              "meetingStatus": "Disconnected" } }
]
""")

# Reference §4.2 (DG detailed-extension-presence.json), verbatim.
DETAILED_EVENT_EXAMPLE = json.loads("""
{
  "uuid": "045b81dc-9f73-4864-84de-08aa6324a7f5",
  "event": "/restapi/v1.0/account/~/extension/6610372004/presence?detailedTelephonyState=true",
  "timestamp": "2016-02-18T09:37:24.597Z",
  "subscriptionId": "9d38419f-645f-4ee3-a053-8cf1368c21c4",
  "ownerId": "6610372004",
  "body": {
    "extensionId": "6610372004",
    "telephonyStatus": "CallConnected",
    "activeCalls": [{
      "id": "39247ebfdc324e3b96d7519672aec3e4",
      "direction": "Inbound",
      "queueCall": true,
      "from": "+18775380038",
      "fromName": "John Wang",
      "to": "+18445810019",
      "telephonyStatus": "CallConnected",
      "startTime": "2016-02-18T09:37:24.322Z",
      "sessionId": "17133704004",
      "partyId": "cs171843418296416309-2",
      "telephonySessionId": "Y3MxNjk4ODA5MTYxMzUyOTU5OUAxMC4zMi40NS44NA"
    }, {
      "id": "39247ebfdc324e3b96d7519672aec3e5",
      "direction": "Outbound",
      "queueCall": false,
      "from": "+18776480025",
      "to": "+18445654321",
      "startTime": "2016-02-18T09:37:24.322Z",
      "telephonyStatus": "NoCall",
      "sessionId": "17133804005",
      "partyId": "cs671843418296416309-2",
      "telephonySessionId": "Y3MxNjytruODA5MTYxMzUyOTU5OUAxMC4zMi40NS44NA"
    }],
    "sequence": 2698,
    "presenceStatus": "Busy",
    "userStatus": "Available",
    "meetingStatus": "Disconnected",
    "dndStatus": "TakeAllCalls",
    "allowSeeMyPresence": true,
    "ringOnMonitoredCall": false,
    "pickUpCallsOnHold": false,
    "totalActiveCalls": 2
  }
}
""")

# Reference §5.2 (SPEC WsTokenResponse), verbatim.
WS_TOKEN_EXAMPLE = json.loads("""
{ "ws_access_token": "U0pDMDFQMDdQQxxxxxxxxx9pSU9OemVzakpn", "uri": "wss://servername.ringcentral.com/ws", "expires_in": 30 }
""")  # noqa: E501

ERROR_EXAMPLE = {"errorCode": "WSG-902", "message": "Idle timeout expired"}

# What a call's partial body leaves out of the guide's detailed sample: nothing else changed.
PARTIAL_OMITS = frozenset(
    {
        "presenceStatus",
        "userStatus",
        "meetingStatus",
        "dndStatus",
        "allowSeeMyPresence",
        "ringOnMonitoredCall",
        "pickUpCallsOnHold",
    }
)


def new_simulator(**options: Any) -> RingCentralSimulator:
    options.setdefault("time_scale", TimeScale(60))
    # The Auth group (5 a minute) is not under test here, and reconnects spend it quickly.
    options.setdefault("rate_limits", {"auth": 1000})
    return RingCentralSimulator(build_company(12), **options)


@pytest.fixture
async def sim() -> AsyncIterator[RingCentralSimulator]:
    async with new_simulator() as simulator:
        yield simulator


@pytest.fixture
async def rest(sim: RingCentralSimulator) -> AsyncIterator[Rest]:
    async with aiohttp.ClientSession() as http:
        client = Rest(sim, http)
        await client.login()
        yield client


@pytest.fixture
async def client(rest: Rest) -> AsyncIterator[GatewayClient]:
    gateway = await GatewayClient.connect(rest)
    await gateway.recv_type("ConnectionDetails")
    yield gateway
    await gateway.close()


def users(sim: RingCentralSimulator) -> list[int]:
    return [e["id"] for e in sim.extensions() if e["type"] == "User" and e["status"] == "Enabled"]


def calm(sim: RingCentralSimulator, *extension_ids: int) -> None:
    """Put extensions in a known idle state before a test starts listening."""
    for extension_id in extension_ids:
        sim.set_presence(
            extension_id,
            userStatus="Available",
            dndStatus="TakeAllCalls",
            meetingStatus="Disconnected",
        )


async def assert_nothing_pending(client: GatewayClient) -> None:
    """Prove no notification is queued: the echo of a fresh Heartbeat is the next frame."""
    await client.send([{"type": "Heartbeat", "messageId": "probe"}])
    assert await client.recv() == [{"type": "Heartbeat", "messageId": "probe"}]


# ---- shapes of everything the gateway sends ---------------------------------------------------


async def test_gateway_frames_match_the_reference_examples(
    sim: RingCentralSimulator, rest: Rest
) -> None:
    owner = sim.owner_extension_id
    calm(sim, owner)
    issued = await rest.ws_token()
    assert_same_shape(WS_TOKEN_EXAMPLE, issued)
    assert issued["uri"] == sim.url.replace("http://", "ws://") + "/ws"
    async with websockets.connect(
        f"{issued['uri']}?access_token={issued['ws_access_token']}"
    ) as ws:
        client = GatewayClient(ws)
        details = await client.recv_type("ConnectionDetails")
        assert_frame_shape(CONNECTION_DETAILS_EXAMPLE, details)
        assert (details[1]["idleTimeout"], details[1]["recoveryTimeout"]) == (30, 3)
        assert details[1]["absoluteTimeout"] == 1440
        assert "recoveryState" not in details[1]

        response = await client.request(
            "POST",
            f"{SUBSCRIPTION}/",
            {"eventFilters": [ACCOUNT_PRESENCE], "deliveryMode": {"transportType": "WebSocket"}},
        )
        assert_frame_shape(SUBSCRIPTION_RESPONSE_EXAMPLE, response, may_add=RATE_HEADERS)
        assert "WSG-SubscriptionId" not in response[0]["headers"]
        assert response[0]["headers"]["X-Rate-Limit-Group"] == "medium"
        assert response[1]["eventFilters"] == [f"/restapi/v1.0/account/{sim.account_id}/presence"]

        sim.set_presence(
            owner,
            telephonyStatus="Ringing",
            userStatus="Busy",
            dndStatus="DoNotAcceptAnyCalls",
            meetingStatus="Connected",
        )
        notification = await client.recv_type("ServerNotification")
        assert_frame_shape(
            NOTIFICATION_EXAMPLE,
            notification,
            # A full body (the default) also has the fields of the guide's detailed sample.
            may_add=frozenset(
                {
                    "wsc",
                    "aggregatedTelephonyStatus",
                    "allowSeeMyPresence",
                    "ringOnMonitoredCall",
                    "pickUpCallsOnHold",
                }
            ),
        )
        meta, envelope = notification
        assert meta["messageId"] == envelope["uuid"]
        assert meta["wsc"]["token"] == details[0]["wsc"]["token"]
        assert meta["wsc"]["sequence"] > details[0]["wsc"]["sequence"]
        assert envelope["subscriptionId"] == response[1]["id"]
        assert envelope["ownerId"] == str(owner)
        assert envelope["body"]["extensionId"] == str(owner)


async def test_recovery_details_match_the_capture(rest: Rest, client: GatewayClient) -> None:
    wsc = client.received[0][0]["wsc"]["token"]
    await client.close()
    again = await GatewayClient.connect(rest, wsc=wsc)
    details = await again.recv_type("ConnectionDetails")
    assert_frame_shape(RECOVERY_DETAILS_EXAMPLE, details)
    assert (details[1]["recoveryState"], details[1]["recoveryErrorCode"]) == ("Failed", "WSG-1005")
    await again.close()


@pytest.mark.parametrize("bodies", ["full", "partial"])
async def test_detailed_filters_win_and_only_they_carry_active_calls(
    sim: RingCentralSimulator, client: GatewayClient, bodies: str
) -> None:
    owner, other = users(sim)[:2]
    calm(sim, owner, other)
    sim.set_switches(presence_bodies=bodies)
    await client.subscribe(
        ACCOUNT_PRESENCE,
        f"/restapi/v1.0/account/~/extension/{owner}/presence",
        f"/restapi/v1.0/account/~/extension/{owner}/presence?detailedTelephonyState=true",
    )

    sim.call(owner, "ringing", peer_name="Pat Caller")
    sim.call(owner, "connected")
    ringing, connected = await client.notification(), await client.notification()
    sim.call(other, "ringing")
    plain = await client.notification()
    sim.call(owner, "ended")
    ended = await client.notification()

    assert_same_shape(
        DETAILED_EVENT_EXAMPLE,
        connected,
        may_add=frozenset({"aggregatedTelephonyStatus", "toName"}),
        # Partial bodies leave out what did not change; full ones have every field of the sample.
        may_omit=PARTIAL_OMITS if bodies == "partial" else frozenset(),
    )
    assert ringing["event"].endswith(f"/extension/{owner}/presence?detailedTelephonyState=true")
    assert ringing["body"]["presenceStatus"] == "Busy"
    assert [c["telephonyStatus"] for c in ringing["body"]["activeCalls"]] == ["Ringing"]
    assert connected["body"]["totalActiveCalls"] == 1
    assert "activeCalls" not in plain["body"]
    assert plain["body"]["telephonyStatus"] == "Ringing"
    (final,) = ended["body"]["activeCalls"]
    assert (final["telephonyStatus"], final["terminationType"]) == ("NoCall", "final")
    assert ended["body"]["totalActiveCalls"] == 0
    assert ended["body"]["presenceStatus"] == "Available"


# ---- notifications ----------------------------------------------------------------------------


def whole_presence(
    sim: RingCentralSimulator, extension_id: int, *, detailed: bool
) -> dict[str, Any]:
    """What GET presence says of the extension now, as a notification body carries it."""
    presence = sim.presence(extension_id)
    if not detailed:
        del presence["activeCalls"], presence["totalActiveCalls"]
    return {"extensionId": str(extension_id), **presence}


async def test_full_bodies_by_default_carry_the_whole_presence_as_the_guide_shows(
    sim: RingCentralSimulator, client: GatewayClient
) -> None:
    owner, other = users(sim)[:2]
    calm(sim, owner, other)
    await client.subscribe(
        ACCOUNT_PRESENCE,
        f"/restapi/v1.0/account/~/extension/{other}/presence?detailedTelephonyState=true",
    )

    sim.set_presence(owner, dndStatus="DoNotAcceptAnyCalls")
    dnd = (await client.notification())["body"]
    dnd_state = whole_presence(sim, owner, detailed=False)
    sim.call(other, "connected", peer_name="Pat Caller")
    connected = await client.notification()
    sim.set_presence(other, meetingStatus="Connected")
    meeting = (await client.notification())["body"]
    meeting_state = whole_presence(sim, other, detailed=True)
    sim.set_presence(owner, message="Lunch")
    lunch = (await client.notification())["body"]

    assert dnd == {**dnd_state, "sequence": dnd["sequence"]}
    assert dnd["userStatus"] == "Available"  # unchanged, and there all the same
    assert_same_shape(
        DETAILED_EVENT_EXAMPLE,
        connected,
        may_add=frozenset({"aggregatedTelephonyStatus", "toName"}),
    )
    # The sample's fields in the sample's order.
    sample_order = list(DETAILED_EVENT_EXAMPLE["body"])
    assert [key for key in connected["body"] if key in sample_order] == sample_order
    # A change that is not about calls still carries the call in progress.
    assert meeting == {**meeting_state, "sequence": meeting["sequence"]}
    assert [c["telephonyStatus"] for c in meeting["activeCalls"]] == ["CallConnected"]
    assert lunch["message"] == "Lunch"
    assert lunch["dndStatus"] == "DoNotAcceptAnyCalls"
    assert lunch["sequence"] == dnd["sequence"] + 1
    await assert_nothing_pending(client)


async def test_partial_bodies_carry_only_changed_fields_and_a_per_extension_sequence(
    sim: RingCentralSimulator, rest: Rest, client: GatewayClient
) -> None:
    owner, other = users(sim)[:2]
    calm(sim, owner, other)
    switches = await rest.control("POST", "/_sim/switches", {"presence_bodies": "partial"})
    assert switches["presence_bodies"] == "partial"
    await client.subscribe(ACCOUNT_PRESENCE)

    await rest.control(
        "POST", f"/_sim/extensions/{owner}/presence", {"dndStatus": "DoNotAcceptAnyCalls"}
    )
    first = (await client.notification())["body"]
    sim.set_presence(owner, message="Lunch")
    second = (await client.notification())["body"]
    sim.set_presence(other, userStatus="Busy")
    elsewhere = (await client.notification())["body"]
    sim.set_presence(owner, message="Lunch")  # no change, so nothing to say

    assert first == {
        "extensionId": str(owner),
        "dndStatus": "DoNotAcceptAnyCalls",
        "presenceStatus": "Busy",
        "sequence": first["sequence"],
    }
    assert second == {
        "extensionId": str(owner),
        "message": "Lunch",
        "sequence": first["sequence"] + 1,
    }
    assert elsewhere["extensionId"] == str(other)
    assert set(elsewhere) == {"extensionId", "userStatus", "presenceStatus", "sequence"}
    await assert_nothing_pending(client)
    assert sim.stats()["notifications"] == 3


async def test_heartbeats_are_echoed_and_bad_frames_get_errors(client: GatewayClient) -> None:
    await client.send([{"type": "Heartbeat", "messageId": "hb-1"}])
    assert await client.recv() == [{"type": "Heartbeat", "messageId": "hb-1"}]

    await client.ws.send("not-json")
    error = await client.recv_type("Error")
    assert_same_shape(ERROR_EXAMPLE, error[1])
    assert error[1]["errorCode"] == "WSG-808"
    # The socket survives a bad frame.
    await assert_nothing_pending(client)


async def test_extension_list_filter_reports_creates_updates_and_deletes(
    rest: Rest, client: GatewayClient
) -> None:
    await client.subscribe("/restapi/v1.0/account/~/extension")

    created = await rest.control(
        "POST", "/_sim/extensions", {"firstName": "Ada", "lastName": "Byron", "email": "ada@x.io"}
    )
    await rest.control("POST", f"/_sim/extensions/{created['id']}/disable")
    await rest.control("DELETE", f"/_sim/extensions/{created['id']}")

    events = [(await client.notification())["body"]["extensions"] for _ in range(3)]
    ext_id = str(created["id"])
    assert events == [
        [{"extensionId": ext_id, "eventType": "Create"}],
        [{"extensionId": ext_id, "eventType": "Update", "hints": ["ExtensionInfo"]}],
        [{"extensionId": ext_id, "eventType": "Delete"}],
    ]


# ---- subscription requests --------------------------------------------------------------------


async def test_a_second_post_replaces_the_subscription_and_put_delete_follow_the_rules(
    sim: RingCentralSimulator, client: GatewayClient
) -> None:
    owner, other = users(sim)[:2]
    calm(sim, owner, other)
    first = await client.subscribe(ACCOUNT_PRESENCE)
    second = await client.subscribe(f"/restapi/v1.0/account/~/extension/{owner}/presence")
    assert first["id"] != second["id"]
    assert second["eventFilters"] == [
        f"/restapi/v1.0/account/{sim.account_id}/extension/{owner}/presence"
    ]

    sim.set_presence(other, userStatus="Busy")
    sim.set_presence(owner, userStatus="Busy")
    only = await client.notification()
    assert (only["body"]["extensionId"], only["subscriptionId"]) == (str(owner), second["id"])
    await assert_nothing_pending(client)

    updated = await client.request(
        "PUT", f"{SUBSCRIPTION}/{second['id']}", {"eventFilters": [ACCOUNT_PRESENCE]}
    )
    assert (updated[0]["status"], updated[1]["id"]) == (200, second["id"])
    sim.set_presence(other, userStatus="Available")
    assert (await client.notification())["body"]["extensionId"] == str(other)

    missing = await client.request(
        "PUT", f"{SUBSCRIPTION}/nope", {"eventFilters": [ACCOUNT_PRESENCE]}
    )
    assert (missing[0]["status"], missing[1]["errorCode"]) == (404, "CMN-102")
    null_body = await client.request("DELETE", f"{SUBSCRIPTION}/{second['id']}", None)
    assert (null_body[0]["type"], null_body[0]["status"]) == ("Error", 400)
    assert null_body[1]["errorCode"] == "WSG-808"
    deleted = await client.request("DELETE", f"{SUBSCRIPTION}/{second['id']}")
    assert deleted[0]["status"] == 204
    assert len(deleted) == 1
    sim.set_presence(other, userStatus="Busy")
    await assert_nothing_pending(client)


async def test_invalid_filters_fail_and_inapplicable_ones_are_disabled(
    sim: RingCentralSimulator, client: GatewayClient
) -> None:
    system = next(e["id"] for e in sim.extensions() if e["type"] != "User")
    accepted = await client.subscribe(
        ACCOUNT_PRESENCE,
        f"/restapi/v1.0/account/~/extension/{system}/presence",
        "/restapi/v1.0/account/~/extension/42/presence",
        "/restapi/v1.0/account/12345/presence",
    )
    assert accepted["eventFilters"] == [f"/restapi/v1.0/account/{sim.account_id}/presence"]
    disabled = accepted["disabledFilters"]
    assert [d["filter"] for d in disabled] == [
        f"/restapi/v1.0/account/~/extension/{system}/presence",
        "/restapi/v1.0/account/~/extension/42/presence",
        "/restapi/v1.0/account/12345/presence",
    ]
    assert all(set(d) == {"filter", "reason", "message"} for d in disabled)

    rejected = await client.request(
        "POST",
        SUBSCRIPTION,
        {
            "eventFilters": ["/restapi/v1.0/glip/posts"],
            "deliveryMode": {"transportType": "WebSocket"},
        },
    )
    assert (rejected[0]["status"], rejected[1]["errorCode"]) == (400, "SUB-508")
    no_delivery = await client.request("POST", SUBSCRIPTION, {"eventFilters": [ACCOUNT_PRESENCE]})
    assert (no_delivery[0]["status"], no_delivery[1]["errorCode"]) == (400, "CMN-101")


async def test_subscription_requests_count_in_the_medium_group() -> None:
    async with (
        new_simulator(rate_limits={"auth": 1000, "medium": 2}) as sim,
        aiohttp.ClientSession() as http,
    ):
        rest = Rest(sim, http)
        await rest.login()
        client = await GatewayClient.connect(rest)
        await client.recv_type("ConnectionDetails")
        await client.subscribe(ACCOUNT_PRESENCE)
        await client.subscribe(ACCOUNT_PRESENCE)
        refused = await client.request(
            "POST",
            SUBSCRIPTION,
            {"eventFilters": [ACCOUNT_PRESENCE], "deliveryMode": {"transportType": "WebSocket"}},
        )
        assert (refused[0]["type"], refused[0]["status"]) == ("ClientRequest", 429)
        assert refused[1]["errorCode"] == "CMN-301"
        assert refused[0]["headers"]["X-Rate-Limit-Group"] == "medium"
        assert "Retry-After" in refused[0]["headers"]
        await client.close()


# ---- drops and recovery -----------------------------------------------------------------------


async def test_drop_then_recovery_replays_what_was_missed_in_order(
    sim: RingCentralSimulator, rest: Rest, client: GatewayClient
) -> None:
    owner, other = users(sim)[:2]
    calm(sim, owner, other)
    subscription = await client.subscribe(ACCOUNT_PRESENCE)
    sim.set_presence(owner, message="before")
    live = await client.notification()
    wsc = client.received[0][0]["wsc"]["token"]

    assert await rest.control("POST", "/_sim/ws/drop") == {"dropped": 1}
    await client.expect_closed()
    sim.set_presence(owner, message="one")
    sim.set_presence(other, userStatus="Busy")
    sim.set_presence(owner, message="two")

    recovered = await GatewayClient.connect(rest, wsc=wsc)
    details = await recovered.recv_type("ConnectionDetails")
    replayed = [await recovered.notification() for _ in range(3)]

    assert details[1]["recoveryState"] == "Successful"
    assert "recoveryErrorCode" not in details[1]
    assert [(n["body"]["extensionId"], n["body"].get("message")) for n in replayed] == [
        (str(owner), "one"),
        (str(other), None),
        (str(owner), "two"),
    ]
    sequences = [live["body"]["sequence"], replayed[0]["body"]["sequence"]]
    assert sequences[1] == sequences[0] + 1
    assert {n["subscriptionId"] for n in replayed} == {subscription["id"]}
    wsc_sequences = [frame[0]["wsc"]["sequence"] for frame in recovered.received[1:]]
    assert wsc_sequences == sorted(wsc_sequences)
    # The subscription continues on the new socket without re-subscribing.
    sim.set_presence(owner, message="after")
    assert (await recovered.notification())["body"]["message"] == "after"
    assert sim.stats()["notifications_replayed"] == 3
    await recovered.close()


async def test_recovery_replays_only_the_most_recent_when_the_buffer_overflows() -> None:
    async with new_simulator(recovery_buffer_size=3) as sim, aiohttp.ClientSession() as http:
        rest = Rest(sim, http)
        await rest.login()
        client = await GatewayClient.connect(rest)
        wsc = (await client.recv_type("ConnectionDetails"))[0]["wsc"]["token"]
        await client.subscribe(ACCOUNT_PRESENCE)
        await sim.drop_sockets()
        owner = sim.owner_extension_id
        for index in range(5):
            sim.set_presence(owner, message=f"m{index}")

        recovered = await GatewayClient.connect(rest, wsc=wsc)
        assert (await recovered.recv_type("ConnectionDetails"))[1]["recoveryState"] == "Successful"
        replayed = [(await recovered.notification())["body"]["message"] for _ in range(3)]
        assert replayed == ["m2", "m3", "m4"]
        await assert_nothing_pending(recovered)
        await recovered.close()


async def test_a_delayed_replay_comes_after_live_notifications() -> None:
    # 30 s at time scale 60: half a second between ConnectionDetails and the replay.
    async with new_simulator(replay_delay=30) as sim, aiohttp.ClientSession() as http:
        owner, other = users(sim)[:2]
        calm(sim, owner, other)
        rest = Rest(sim, http)
        await rest.login()
        client = await GatewayClient.connect(rest)
        wsc = (await client.recv_type("ConnectionDetails"))[0]["wsc"]["token"]
        await client.subscribe(ACCOUNT_PRESENCE)
        await sim.drop_sockets()
        sim.set_presence(owner, message="missed")

        recovered = await GatewayClient.connect(rest, wsc=wsc)
        details = await recovered.recv_type("ConnectionDetails")
        sim.set_presence(other, message="live")
        live = await recovered.notification()
        replayed_by_then = sim.stats()["notifications_replayed"]
        late = await recovered.notification()

        assert details[1]["recoveryState"] == "Successful"
        assert (live["body"]["message"], replayed_by_then) == ("live", 0)
        assert (late["body"]["extensionId"], late["body"]["message"]) == (str(owner), "missed")
        assert sim.stats()["notifications_replayed"] == 1
        await assert_nothing_pending(recovered)
        await recovered.close()


async def test_a_drop_before_the_delayed_replay_keeps_it_for_the_next_recovery() -> None:
    async with new_simulator(replay_delay=600) as sim, aiohttp.ClientSession() as http:
        owner = sim.owner_extension_id
        calm(sim, owner)
        rest = Rest(sim, http)
        await rest.login()
        client = await GatewayClient.connect(rest)
        await client.recv_type("ConnectionDetails")
        await client.subscribe(ACCOUNT_PRESENCE)
        await sim.drop_sockets()
        sim.set_presence(owner, message="one")

        waiting = await GatewayClient.connect(rest, wsc=client.received[0][0]["wsc"]["token"])
        details = await waiting.recv_type("ConnectionDetails")
        await sim.drop_sockets()  # ten seconds before the replay was due
        sim.set_presence(owner, message="two")
        sim.set_switches(replay_delay=0)
        again = await GatewayClient.connect(rest, wsc=details[0]["wsc"]["token"])

        assert (await again.recv_type("ConnectionDetails"))[1]["recoveryState"] == "Successful"
        replayed = [(await again.notification())["body"]["message"] for _ in range(2)]
        assert replayed == ["one", "two"]
        await assert_nothing_pending(again)
        await again.close()


async def test_recovery_fails_with_wsg_1005_when_nothing_was_subscribed(
    sim: RingCentralSimulator, rest: Rest, client: GatewayClient
) -> None:
    wsc = client.received[0][0]["wsc"]["token"]
    await sim.drop_sockets()

    again = await GatewayClient.connect(rest, wsc=wsc)
    details = await again.recv_type("ConnectionDetails")

    assert details[1]["recoveryState"] == "Failed"
    assert details[1]["recoveryErrorCode"] == "WSG-1005"
    assert details[0]["wsc"]["token"] != wsc
    # A failed recovery leaves a working socket to subscribe on.
    await again.subscribe(ACCOUNT_PRESENCE)
    sim.set_presence(sim.owner_extension_id, message="fresh")
    assert (await again.notification())["body"]["message"] == "fresh"
    await again.close()


async def test_recovery_needs_the_same_oauth_session_but_survives_a_refresh(
    sim: RingCentralSimulator, rest: Rest, client: GatewayClient
) -> None:
    wsc = client.received[0][0]["wsc"]["token"]
    await client.subscribe(ACCOUNT_PRESENCE)
    await sim.drop_sockets()
    sim.set_presence(sim.owner_extension_id, message="missed")

    other_session = Rest(sim, rest.http)
    await other_session.login()
    foreign = await GatewayClient.connect(other_session, wsc=wsc)
    foreign_details = await foreign.recv_type("ConnectionDetails")
    await rest.refresh()
    same = await GatewayClient.connect(rest, wsc=wsc)
    same_details = await same.recv_type("ConnectionDetails")

    assert foreign_details[1]["recoveryState"] == "Failed"
    assert foreign_details[1]["recoveryErrorCode"] == "WSG-1003"
    assert same_details[1]["recoveryState"] == "Successful"
    assert (await same.notification())["body"]["message"] == "missed"
    await foreign.close()
    await same.close()


async def test_recovery_after_the_recovery_timeout_fails() -> None:
    clock = ManualClock()
    async with new_simulator(clock=clock) as sim, aiohttp.ClientSession() as http:
        rest = Rest(sim, http)
        await rest.login()
        client = await GatewayClient.connect(rest)
        wsc = (await client.recv_type("ConnectionDetails"))[0]["wsc"]["token"]
        await client.subscribe(ACCOUNT_PRESENCE)
        await sim.drop_sockets()
        clock.advance(3.1)  # recoveryTimeout is 180 s, 3 s at time scale 60

        late = await GatewayClient.connect(rest, wsc=wsc)
        details = await late.recv_type("ConnectionDetails")

        assert (details[1]["recoveryState"], details[1]["recoveryErrorCode"]) == (
            "Failed",
            "WSG-1005",
        )
        await late.close()


async def test_malformed_wsc_gets_wsg_400_and_the_socket_closes(rest: Rest) -> None:
    client = await GatewayClient.connect(rest, wsc="RTFhRG5nfExxxxxxxxxxxcHE3bXkyRURQVQ")
    error = await client.recv_type("Error")
    assert error[1] == {
        "errorCode": "WSG-400",
        "message": "Malformed WebSocket session context token",
    }
    await client.expect_closed()


async def test_ws_tokens_are_single_use_and_short_lived() -> None:
    clock = ManualClock()
    async with new_simulator(clock=clock) as sim, aiohttp.ClientSession() as http:
        rest = Rest(sim, http)
        await rest.login()
        issued = await rest.ws_token()
        url = f"{issued['uri']}?access_token={issued['ws_access_token']}"
        async with websockets.connect(url) as ws:
            assert json.loads(await ws.recv())[0]["type"] == "ConnectionDetails"
        async with websockets.connect(url) as reused:
            meta, body = json.loads(await reused.recv())
            assert (meta["type"], body["errorCode"]) == ("Error", "TokenInvalid")
            await asyncio.wait_for(reused.wait_closed(), 5)

        slow = await rest.ws_token()
        # 30 s at time scale 60 is half a second, but the wire can only say whole seconds, and
        # a token is never refused before the time its expires_in promised.
        assert slow["expires_in"] == 1
        clock.advance(0.9)
        assert await first_frame_type(slow) == "ConnectionDetails"

        late = await rest.ws_token()
        clock.advance(1.01)
        assert await first_frame_type(late) == "Error"


async def first_frame_type(issued: dict[str, Any]) -> str:
    async with websockets.connect(
        f"{issued['uri']}?access_token={issued['ws_access_token']}"
    ) as ws:
        return str(json.loads(await ws.recv())[0]["type"])


async def test_reusable_ws_tokens_open_sockets_until_they_expire() -> None:
    clock = ManualClock()
    # As RingCentral's own library has it: a 600 s token, reused for 80 % of its life.
    options = {"ws_token_single_use": False, "ws_token_ttl": 600}
    async with new_simulator(clock=clock, **options) as sim, aiohttp.ClientSession() as http:
        rest = Rest(sim, http)
        await rest.login()
        issued = await rest.ws_token()
        assert issued["expires_in"] == 10  # 600 s at time scale 60

        assert await first_frame_type(issued) == "ConnectionDetails"
        clock.advance(8.0)
        assert await first_frame_type(issued) == "ConnectionDetails"
        clock.advance(2.01)
        assert await first_frame_type(issued) == "Error"

        sim.set_switches(ws_token_single_use=True)
        fresh = await rest.ws_token()
        assert await first_frame_type(fresh) == "ConnectionDetails"
        assert await first_frame_type(fresh) == "Error"


# ---- timeouts and forced closes ---------------------------------------------------------------


async def test_idle_timeout_sends_wsg_902_at_scaled_time_even_with_ping_frames() -> None:
    async with new_simulator(time_scale=TimeScale(1800)) as sim, aiohttp.ClientSession() as http:
        rest = Rest(sim, http)
        await rest.login()
        loop = asyncio.get_running_loop()
        # The client pings every 50 ms and the server pings too; neither counts as activity.
        client = await GatewayClient.connect(rest, ping_interval=0.05)
        details = await client.recv_type("ConnectionDetails")
        opened = loop.time()

        error = await client.recv_type("Error")

        assert details[1]["idleTimeout"] == 1  # 1800 s at time scale 1800
        assert error[1] == {"errorCode": "WSG-902", "message": "Idle timeout expired"}
        assert loop.time() - opened >= 0.95  # never before the scaled idle timeout
        await client.expect_closed()


async def test_heartbeats_keep_an_idle_socket_open() -> None:
    async with new_simulator(time_scale=TimeScale(1800)) as sim, aiohttp.ClientSession() as http:
        rest = Rest(sim, http)
        await rest.login()
        loop = asyncio.get_running_loop()
        client = await GatewayClient.connect(rest)
        await client.recv_type("ConnectionDetails")
        until = loop.time() + 3.0  # three idle timeouts
        beats = 0
        while loop.time() < until:
            beats += 1
            await client.send([{"type": "Heartbeat", "messageId": f"hb-{beats}"}])
            assert await client.recv() == [{"type": "Heartbeat", "messageId": f"hb-{beats}"}]
            # Half an idle timeout of silence from the server, or a frame we did not expect.
            with pytest.raises(TimeoutError):
                await client.recv(within=0.5)
        assert client.ws.state is State.OPEN
        await client.close()


async def test_absolute_timeout_sends_wsg_903_and_the_session_can_recover() -> None:
    async with (
        new_simulator(absolute_timeout=60) as sim,
        aiohttp.ClientSession() as http,
    ):
        rest = Rest(sim, http)
        await rest.login()
        client = await GatewayClient.connect(rest)
        details = await client.recv_type("ConnectionDetails")
        await client.subscribe(ACCOUNT_PRESENCE)

        error = await client.recv_type("Error")
        await client.expect_closed()
        recovered = await GatewayClient.connect(rest, wsc=details[0]["wsc"]["token"])

        assert details[1]["absoluteTimeout"] == 1
        assert error[1] == {"errorCode": "WSG-903", "message": "Absolute timeout expired"}
        assert (await recovered.recv_type("ConnectionDetails"))[1]["recoveryState"] == "Successful"
        await recovered.close()


async def test_drop_with_an_error_sends_it_before_closing(
    rest: Rest, client: GatewayClient
) -> None:
    dropped = await rest.control("POST", "/_sim/ws/drop", {"error": "WSG-903"})
    error = await client.recv_type("Error")
    assert dropped == {"dropped": 1}
    assert error[1]["errorCode"] == "WSG-903"
    await client.expect_closed()
    await wait_until(lambda: rest.sim.stats()["sockets"] == 0)


async def test_revoking_sessions_closes_their_sockets(
    sim: RingCentralSimulator, rest: Rest, client: GatewayClient
) -> None:
    wsc = client.received[0][0]["wsc"]["token"]
    await client.subscribe(ACCOUNT_PRESENCE)

    assert await rest.control("POST", "/_sim/tokens/revoke") == {"revoked": 1}

    await client.expect_closed()
    await rest.login()
    again = await GatewayClient.connect(rest, wsc=wsc)
    assert (await again.recv_type("ConnectionDetails"))[1]["recoveryState"] == "Failed"
    await again.close()


async def test_faults_apply_to_the_socket_upgrade_and_to_client_requests(
    sim: RingCentralSimulator, rest: Rest, client: GatewayClient
) -> None:
    sim.add_fault(SUBSCRIPTION, 503)
    failed = await client.request(
        "POST",
        SUBSCRIPTION,
        {"eventFilters": [ACCOUNT_PRESENCE], "deliveryMode": {"transportType": "WebSocket"}},
    )
    assert (failed[0]["status"], failed[1]["errorCode"]) == (503, "CMN-201")

    sim.add_fault("/ws", 503)
    with pytest.raises(websockets.InvalidStatus) as caught:
        await GatewayClient.connect(rest)
    assert caught.value.response.status_code == 503


async def test_stop_closes_every_socket(sim: RingCentralSimulator, client: GatewayClient) -> None:
    await client.subscribe(ACCOUNT_PRESENCE)
    await sim.stop()
    await client.expect_closed()
    assert sim.stats()["sockets"] == 0
