"""The RingCentral simulator over REST: the unmodified SDK, paging, tokens, limits, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from ringcentral import SDK
from ringcentral.http.api_exception import ApiException

from bot.sim.company import build_company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral import RingCentralSimulator
from tests.sim.rc_shapes import assert_same_shape
from tests.sim.rc_support import JWT_GRANT, ManualClock, Rest

PRESENCE = "/restapi/v1.0/account/~/presence"
EXTENSIONS = "/restapi/v1.0/account/~/extension"

# Reference §2, verbatim.
EXTENSION_PAGE_EXAMPLE = json.loads("""
{
  "uri": "https://platform.ringcentral.com/restapi/v1.0/account/159048008/extension?type=User&status=Enabled&page=1&perPage=2",
  "records": [
    {
      "uri": "https://platform.ringcentral.com/restapi/v1.0/account/159048008/extension/159048008",
      "id": 159048008,
      "extensionNumber": "101",
      "contact": {
        "firstName": "John", "lastName": "Smith", "company": "MyCompany Inc.",
        "email": "john.smith@mycompany.com", "businessPhone": "+14186509302", "emailAsLoginName": true
      },
      "name": "John Smith",
      "type": "User",
      "status": "Enabled",
      "permissions": { "admin": { "enabled": true }, "internationalCalling": { "enabled": true } },
      "profileImage": { "uri": "https://platform.ringcentral.com/restapi/v1.0/account/159048008/extension/159048008/profile-image" },
      "hidden": false
    },
    {
      "uri": "https://platform.ringcentral.com/restapi/v1.0/account/159048008/extension/1201056008",
      "id": 1201056008,
      "extensionNumber": "110",
      "contact": { "firstName": "Marie", "lastName": "Moon", "email": "marie.moon@mycompany.com" },
      "name": "Marie Moon",
      "type": "User",
      "status": "Enabled"
    }
  ],
  "paging": { "page": 1, "totalPages": 3, "perPage": 2, "totalElements": 5, "pageStart": 0, "pageEnd": 1 },
  "navigation": {
    "firstPage": { "uri": "https://platform.ringcentral.com/restapi/v1.0/account/159048008/extension?type=User&status=Enabled&page=1&perPage=2" },
    "nextPage":  { "uri": "https://platform.ringcentral.com/restapi/v1.0/account/159048008/extension?type=User&status=Enabled&page=2&perPage=2" },
    "lastPage":  { "uri": "https://platform.ringcentral.com/restapi/v1.0/account/159048008/extension?type=User&status=Enabled&page=3&perPage=2" }
  }
}
""")  # noqa: E501

# Reference §3.2, verbatim.
ACCOUNT_PRESENCE_EXAMPLE = json.loads("""
{
  "uri": "https://platform.ringcentral.com/restapi/v1.0/account/248111004/presence?page=1&perPage=1000",
  "records": [
    {
      "uri": "https://platform.ringcentral.com/restapi/v1.0/account/248111004/extension/248111004/presence",
      "extension": { "uri": "https://platform.ringcentral.com/restapi/v1.0/account/248111004/extension/248111004", "id": 248111004, "extensionNumber": "101" },
      "presenceStatus": "Available",
      "telephonyStatus": "NoCall",
      "userStatus": "Available",
      "dndStatus": "TakeAllCalls",
      "meetingStatus": "Disconnected",
      "allowSeeMyPresence": true,
      "ringOnMonitoredCall": false,
      "pickUpCallsOnHold": false
    }
  ],
  "paging": { "page": 1, "perPage": 1000, "pageStart": 0, "pageEnd": 0, "totalPages": 1, "totalElements": 1 },
  "navigation": { "firstPage": { "uri": "..." }, "lastPage": { "uri": "..." } }
}
""")  # noqa: E501

# Reference §1.3, verbatim.
TOKEN_EXAMPLE = json.loads("""
{
  "access_token": "U1BCMDFUMDRKV1MwMXxzLFSvXdw5PHMsVLEn_MrtcyxUsw",
  "token_type": "bearer",
  "expires_in": 7199,
  "refresh_token": "U1BCMDFUMDRKV1MwMXxzLFL4ec6A0XMsUv9wLriecyxS_w",
  "refresh_token_expires_in": 604799,
  "scope": "AccountInfo CallLog ExtensionInfo Messages SMS",
  "owner_id": "256440016"
}
""")


@pytest.fixture
async def sim() -> AsyncIterator[RingCentralSimulator]:
    async with RingCentralSimulator(build_company(20), time_scale=TimeScale(60)) as simulator:
        yield simulator


@pytest.fixture
async def rest(sim: RingCentralSimulator) -> AsyncIterator[Rest]:
    async with aiohttp.ClientSession() as http:
        client = Rest(sim, http)
        await client.login()
        yield client


def status_of(error: ApiException) -> int:
    return int(error.api_response().response().status_code)


def body_of(error: ApiException) -> dict[str, object]:
    return dict(error.api_response().response().json())


# ---- the unmodified SDK ----------------------------------------------------------------------


async def test_sdk_logs_in_with_jwt_and_pages_through_every_enabled_user() -> None:
    company = build_company(2500)
    async with RingCentralSimulator(company, time_scale=TimeScale(60)) as sim:
        platform = SDK(sim.client_id, sim.client_secret, sim.url).platform()
        await asyncio.to_thread(platform.login, jwt=sim.jwt)

        query = {"type": "User", "status": "Enabled", "perPage": 1000}
        response = await asyncio.to_thread(platform.get, EXTENSIONS, query)
        pages = [response.json_dict()]
        while "nextPage" in pages[-1]["navigation"]:
            uri = pages[-1]["navigation"]["nextPage"]["uri"]
            pages.append((await asyncio.to_thread(platform.get, uri)).json_dict())

        expected = {p.extension_id for p in company.rc_users if p.extension_status == "Enabled"}
        seen = [record["id"] for page in pages for record in page["records"]]
        assert len(expected) == 2625
        assert len(pages) == 3
        assert [page["paging"]["page"] for page in pages] == [1, 2, 3]
        assert len(seen) == len(set(seen)) == len(expected)
        assert set(seen) == expected
        assert all(
            r["type"] == "User" and r["status"] == "Enabled" for p in pages for r in p["records"]
        )
        last = pages[-1]
        assert last["paging"] == {
            "page": 3,
            "totalPages": 3,
            "perPage": 1000,
            "totalElements": 2625,
            "pageStart": 2000,
            "pageEnd": 2624,
        }
        assert "previousPage" in last["navigation"]
        # The account id in every URI is the real one, never `~`.
        assert f"/account/{sim.account_id}/extension?" in last["navigation"]["firstPage"]["uri"]


async def test_sdk_refresh_kills_the_previous_access_token(
    sim: RingCentralSimulator, rest: Rest
) -> None:
    platform = SDK(sim.client_id, sim.client_secret, sim.url).platform()
    await asyncio.to_thread(platform.login, jwt=sim.jwt)
    old_access = platform.auth().access_token()
    old_refresh = platform.auth().refresh_token()

    await asyncio.to_thread(platform.refresh)

    assert platform.auth().access_token() != old_access
    status, body, _ = await rest.get(f"{EXTENSIONS}/~", token=old_access)
    assert status == 401
    assert body["errorCode"] == "TokenInvalid"
    assert body["errors"][0]["errorCode"].startswith("OAU-")
    fresh = await asyncio.to_thread(platform.get, f"{EXTENSIONS}/~")
    assert fresh.json_dict()["id"] == sim.owner_extension_id
    # Refresh tokens are single-use.
    status, body, _ = await rest.form(
        "/restapi/oauth/token", {"grant_type": "refresh_token", "refresh_token": old_refresh}
    )
    assert status == 400
    assert body["error"] == "invalid_grant"
    assert body["errorCode"] == body["errors"][0]["errorCode"]


async def test_expired_access_tokens_are_refused_until_the_sdk_refreshes(
    sim: RingCentralSimulator, rest: Rest
) -> None:
    platform = SDK(sim.client_id, sim.client_secret, sim.url).platform()
    await asyncio.to_thread(platform.login, jwt=sim.jwt)

    expired = await rest.control("POST", "/_sim/tokens/expire")

    assert expired == {"expired": 2}
    with pytest.raises(ApiException) as caught:
        await asyncio.to_thread(platform.get, f"{EXTENSIONS}/~")
    assert status_of(caught.value) == 401
    assert body_of(caught.value)["errors"] == [
        {"errorCode": "OAU-128", "message": "Access token expired"}
    ]
    await asyncio.to_thread(platform.refresh)
    response = await asyncio.to_thread(platform.get, f"{EXTENSIONS}/~")
    assert response.json_dict()["id"] == sim.owner_extension_id


async def test_access_token_expires_after_its_scaled_lifetime() -> None:
    clock = ManualClock()
    company = build_company(3)
    async with (
        RingCentralSimulator(
            company, time_scale=TimeScale(60), access_token_ttl=600, clock=clock
        ) as sim,
        aiohttp.ClientSession() as http,
    ):
        rest = Rest(sim, http)
        token = await rest.login()
        assert token["expires_in"] == 10
        clock.advance(9.9)
        assert (await rest.get(f"{EXTENSIONS}/~"))[0] == 200
        clock.advance(0.2)
        status, body, _ = await rest.get(f"{EXTENSIONS}/~")
        assert status == 401
        assert body["errors"][0]["errorCode"] == "OAU-128"
        await rest.refresh()
        assert (await rest.get(f"{EXTENSIONS}/~"))[0] == 200


async def test_revoke_ends_the_whole_session(sim: RingCentralSimulator, rest: Rest) -> None:
    platform = SDK(sim.client_id, sim.client_secret, sim.url).platform()
    await asyncio.to_thread(platform.login, jwt=sim.jwt)
    access, refresh = platform.auth().access_token(), platform.auth().refresh_token()

    await asyncio.to_thread(platform.logout)

    assert (await rest.get(f"{EXTENSIONS}/~", token=access))[0] == 401
    status, body, _ = await rest.form(
        "/restapi/oauth/token", {"grant_type": "refresh_token", "refresh_token": refresh}
    )
    assert (status, body["error"]) == (400, "invalid_grant")
    # Other sessions are untouched by one revoke, and all die with the control endpoint.
    assert (await rest.get(f"{EXTENSIONS}/~"))[0] == 200
    assert await rest.control("POST", "/_sim/tokens/revoke") == {"revoked": 1}
    assert (await rest.get(f"{EXTENSIONS}/~"))[0] == 401


async def test_each_jwt_login_is_a_new_session_and_the_sixth_evicts_the_oldest() -> None:
    async with (
        RingCentralSimulator(build_company(3), rate_limits={"auth": 50}) as sim,
        aiohttp.ClientSession() as http,
    ):
        rest = Rest(sim, http)
        await rest.login()
        await check_session_eviction(rest)


async def check_session_eviction(rest: Rest) -> None:
    tokens = [rest.access_token]
    sessions = {(await rest.login())["session_id"] for _ in range(4)}
    tokens.append(rest.access_token)
    assert len(sessions) == 4
    assert (await rest.get(f"{EXTENSIONS}/~", token=tokens[0]))[0] == 200

    await rest.login()

    assert (await rest.get(f"{EXTENSIONS}/~", token=tokens[0]))[0] == 401
    assert (await rest.get(f"{EXTENSIONS}/~", token=tokens[1]))[0] == 200


async def test_token_response_matches_the_reference_shape(rest: Rest) -> None:
    token = await rest.login()
    assert_same_shape(TOKEN_EXAMPLE, token, may_add=frozenset({"session_id", "endpoint_id"}))
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 60  # 3600 s at time scale 60


async def test_bad_client_credentials_and_bad_grants_use_oauth_error_shapes(
    sim: RingCentralSimulator, rest: Rest
) -> None:
    form = {"grant_type": JWT_GRANT, "assertion": sim.jwt}
    wrong = "Basic " + "d3Jvbmc6c2VjcmV0"  # wrong:secret
    status, body, _ = await rest.form("/restapi/oauth/token", form, authorization=wrong)
    assert status == 401
    assert body["error"] == "invalid_client"
    assert body["errorCode"] == "OAU-123"
    assert body["errors"][0]["errorCode"] == "OAU-123"
    assert body["error_description"] == body["message"]

    status, body, _ = await rest.form(
        "/restapi/oauth/token", {"grant_type": JWT_GRANT, "assertion": "not-the-jwt"}
    )
    assert (status, body["error"]) == (400, "invalid_grant")

    platform = SDK(sim.client_id, "wrong-secret", sim.url).platform()
    with pytest.raises(ApiException) as caught:
        await asyncio.to_thread(platform.login, jwt=sim.jwt)
    assert status_of(caught.value) == 401


async def test_unknown_or_missing_bearer_tokens_are_refused(rest: Rest) -> None:
    status, body, _ = await rest.get(PRESENCE, token="made-up")
    assert status == 401
    assert body["errorCode"] == "TokenInvalid"
    async with rest.http.get(rest.sim.url + PRESENCE) as response:
        assert response.status == 401


# ---- extensions and presence -----------------------------------------------------------------


async def test_extension_page_matches_the_reference_example(
    sim: RingCentralSimulator, rest: Rest
) -> None:
    status, page, _ = await rest.get(f"{EXTENSIONS}?type=User&status=Enabled&page=1&perPage=2")
    assert status == 200
    assert_same_shape(EXTENSION_PAGE_EXAMPLE, page)
    assert page["uri"] == (
        f"{sim.url}/restapi/v1.0/account/{sim.account_id}/extension"
        "?type=User&status=Enabled&page=1&perPage=2"
    )
    assert page["navigation"]["nextPage"]["uri"].endswith(
        "type=User&status=Enabled&page=2&perPage=2"
    )


async def test_extension_filters_are_multi_valued_and_validated(
    sim: RingCentralSimulator, rest: Rest
) -> None:
    _, repeated, _ = await rest.get(f"{EXTENSIONS}?type=User&type=Department&perPage=max")
    _, commas, _ = await rest.get(f"{EXTENSIONS}?type=User,Department&perPage=max")
    _, everything, _ = await rest.get(f"{EXTENSIONS}?perPage=5000")
    _, disabled, _ = await rest.get(f"{EXTENSIONS}?status=Disabled")
    _, both_statuses, _ = await rest.get(f"{EXTENSIONS}?status=Enabled&status=Disabled&type=User")

    assert repeated["paging"]["perPage"] == everything["paging"]["perPage"] == 1000
    assert [r["id"] for r in repeated["records"]] == [r["id"] for r in commas["records"]]
    assert {r["type"] for r in repeated["records"]} == {"User", "Department"}
    assert {r["type"] for r in everything["records"]} > {"User", "Department", "IvrMenu"}
    assert disabled["records"]
    assert {r["status"] for r in disabled["records"]} == {"Disabled"}
    assert both_statuses["paging"]["totalElements"] == len(sim.extensions()) - 4
    status, body, _ = await rest.get(f"{EXTENSIONS}?type=Robot")
    assert (status, body["errorCode"]) == (400, "CMN-101")


async def test_paging_past_the_end_and_bad_parameters(rest: Rest) -> None:
    _, beyond, _ = await rest.get(f"{EXTENSIONS}?perPage=10&page=9")
    assert beyond["records"] == []
    assert "pageStart" not in beyond["paging"]
    assert "nextPage" not in beyond["navigation"]
    assert beyond["navigation"]["previousPage"]["uri"].endswith("page=8&perPage=10")
    for bad in ("perPage=0", "page=0", "page=x", "perPage=-3"):
        status, body, _ = await rest.get(f"{EXTENSIONS}?{bad}")
        assert (status, body["errorCode"]) == (400, "CMN-101"), bad


async def test_single_extension_by_tilde_or_real_ids(sim: RingCentralSimulator, rest: Rest) -> None:
    owner = sim.owner_extension_id
    _, by_tilde, _ = await rest.get(f"{EXTENSIONS}/~")
    _, by_ids, headers = await rest.get(f"/restapi/v1.0/account/{sim.account_id}/extension/{owner}")
    assert by_tilde == by_ids
    assert by_ids["id"] == owner
    assert by_ids["contact"]["email"]
    assert headers["X-Rate-Limit-Group"] == "light"
    status, body, _ = await rest.get(f"{EXTENSIONS}/123")
    assert (status, body["errorCode"]) == (404, "CMN-102")
    status, _, _ = await rest.get("/restapi/v1.0/account/999/extension/~")
    assert status == 404


async def test_account_presence_matches_the_reference_example(rest: Rest) -> None:
    status, page, headers = await rest.get(f"{PRESENCE}?perPage=1000")
    assert status == 200
    assert headers["X-Rate-Limit-Group"] == "heavy"
    users = [r for r in page["records"] if "telephonyStatus" in r]
    others = [r for r in page["records"] if "telephonyStatus" not in r]
    assert_same_shape(
        ACCOUNT_PRESENCE_EXAMPLE,
        {**page, "records": users},
        may_add=frozenset({"aggregatedTelephonyStatus"}),
    )
    # Non-user extensions: always Offline, with the documented fields left out.
    assert len(others) == 4
    assert_same_shape(
        ACCOUNT_PRESENCE_EXAMPLE["records"][0],
        others[0],
        may_omit=frozenset({"telephonyStatus", "userStatus", "dndStatus"}),
    )
    assert {r["presenceStatus"] for r in others} == {"Offline"}
    assert all("sequence" not in r for r in page["records"])


async def test_account_presence_pages_follow_navigation(rest: Rest) -> None:
    _, first, _ = await rest.get(f"{PRESENCE}?perPage=7&detailedTelephonyState=true")
    ids = [r["extension"]["id"] for r in first["records"]]
    page = first
    while "nextPage" in page["navigation"]:
        _, page, _ = await rest.get(page["navigation"]["nextPage"]["uri"])
        ids += [r["extension"]["id"] for r in page["records"]]
    assert len(ids) == len(set(ids)) == first["paging"]["totalElements"]
    assert all("activeCalls" in r for r in page["records"] if "telephonyStatus" in r)
    assert "detailedTelephonyState=true" in page["uri"]


async def test_presence_reflects_calls_only_with_detailed_state(
    sim: RingCentralSimulator, rest: Rest
) -> None:
    owner = sim.owner_extension_id
    sim.set_presence(owner, userStatus="Available", dndStatus="TakeAllCalls")
    sim.call(owner, "ringing", peer_name="Pat Caller")
    sim.call(owner, "connected")

    _, basic, _ = await rest.get(f"{EXTENSIONS}/{owner}/presence")
    _, detailed, _ = await rest.get(f"{EXTENSIONS}/{owner}/presence?detailedTelephonyState=true")

    assert basic["telephonyStatus"] == basic["aggregatedTelephonyStatus"] == "CallConnected"
    assert basic["presenceStatus"] == "Busy"
    assert "activeCalls" not in basic
    assert detailed["totalActiveCalls"] == 1
    (call,) = detailed["activeCalls"]
    assert call["telephonyStatus"] == "CallConnected"
    assert call["fromName"] == "Pat Caller"
    assert call["direction"] == "Inbound"

    sim.call(owner, "ended")
    _, after, _ = await rest.get(f"{EXTENSIONS}/{owner}/presence?detailedTelephonyState=True")
    assert after["activeCalls"] == []
    assert (after["telephonyStatus"], after["presenceStatus"]) == ("NoCall", "Available")


async def test_non_user_presence_is_always_offline(sim: RingCentralSimulator, rest: Rest) -> None:
    system_id = next(e["id"] for e in sim.extensions() if e["type"] == "IvrMenu")
    _, presence, _ = await rest.get(f"{EXTENSIONS}/{system_id}/presence")
    assert presence["presenceStatus"] == "Offline"
    assert not {"telephonyStatus", "message", "userStatus", "dndStatus"} & set(presence)
    status, body = await control_error(rest, f"/_sim/extensions/{system_id}/presence", {})
    assert status == 400
    assert "Offline" in body["error"]


async def test_bulk_presence_answers_multipart_and_stops_at_thirty(
    sim: RingCentralSimulator, rest: Rest
) -> None:
    users = [e["id"] for e in sim.extensions() if e["type"] == "User"]
    platform = SDK(sim.client_id, sim.client_secret, sim.url).platform()
    await asyncio.to_thread(platform.login, jwt=sim.jwt)

    ids = ",".join(str(i) for i in users[:3])
    response = await asyncio.to_thread(platform.get, f"{EXTENSIONS}/{ids},77/presence")

    assert response.response().status_code == 207
    parts = response.multipart()
    assert [p.json_dict()["extension"]["id"] for p in parts[:3]] == users[:3]
    assert parts[3].response().status_code == 404
    status, body, _ = await rest.get(f"{EXTENSIONS}/{','.join([str(users[0])] * 31)}/presence")
    assert (status, body["errorCode"]) == (400, "InvalidMultipartRequest")


# ---- rate limits -----------------------------------------------------------------------------


async def test_heavy_group_refuses_the_eleventh_call_and_every_call_restarts_the_penalty() -> None:
    clock = ManualClock()
    async with (
        RingCentralSimulator(build_company(5), time_scale=TimeScale(60), clock=clock) as sim,
        aiohttp.ClientSession() as http,
    ):
        rest = Rest(sim, http)
        await rest.login()
        for used in range(1, 11):
            status, _, headers = await rest.get(PRESENCE)
            assert status == 200
            assert headers["X-Rate-Limit-Group"] == "heavy"
            assert headers["X-Rate-Limit-Limit"] == "10"
            assert headers["X-Rate-Limit-Remaining"] == str(10 - used)
            assert headers["X-Rate-Limit-Window"] == "1"  # 60 s at time scale 60

        status, body, headers = await rest.get(PRESENCE)
        assert status == 429
        assert body["errorCode"] == "CMN-301"
        assert headers["Retry-After"] == "1"
        # The penalty (60 s scaled to 1 s) would end at +1.0; a request at +0.6 restarts it.
        clock.advance(0.6)
        assert (await rest.get(PRESENCE))[0] == 429
        # At +1.2 the first penalty would be over, but the one restarted at +0.6 is not.
        clock.advance(0.6)
        assert (await rest.get(PRESENCE))[0] == 429
        # Other groups are counted separately.
        assert (await rest.get(f"{EXTENSIONS}/~"))[0] == 200
        # Quiet for longer than the penalty (restarted at +1.2): allowed again.
        clock.advance(1.1)
        status, _, headers = await rest.get(PRESENCE)
        assert status == 200
        assert sim.stats()["rate_limited"] == 3
        assert sim.stats()["rate_limited_by_group"]["heavy"] == 3


async def test_custom_limits_and_the_auth_group() -> None:
    async with (
        RingCentralSimulator(
            build_company(3), time_scale=TimeScale(60), rate_limits={"auth": 2}
        ) as sim,
        aiohttp.ClientSession() as http,
    ):
        rest = Rest(sim, http)
        body = await rest.login()
        assert body["access_token"]
        await rest.ws_token()
        status, error, headers = await rest.form(
            "/restapi/oauth/token", {"grant_type": JWT_GRANT, "assertion": sim.jwt}
        )
        assert status == 429
        assert error["errorCode"] == "CMN-301"
        assert headers["X-Rate-Limit-Group"] == "auth"
        assert "Retry-After" in headers


# ---- faults ----------------------------------------------------------------------------------


async def test_injected_faults_hit_the_next_matching_requests_only(
    sim: RingCentralSimulator, rest: Rest
) -> None:
    owner = sim.owner_extension_id
    sim.add_fault("/restapi/v1.0/account/~/extension/{id}/presence", 503, count=2, retry_after=3)
    await rest.control(
        "POST",
        "/_sim/faults",
        {"path": "/restapi/v1.0/account/*/presence", "status": 429, "retry_after": 2},
    )

    outcomes = [await rest.get(f"{EXTENSIONS}/{owner}/presence") for _ in range(3)]
    assert [status for status, _, _ in outcomes] == [503, 503, 200]
    assert outcomes[0][1]["errorCode"] == "CMN-201"
    assert outcomes[0][2]["Retry-After"] == "3"
    status, body, headers = await rest.get(PRESENCE)
    assert (status, body["errorCode"], headers["Retry-After"]) == (429, "CMN-301", "2")
    assert (await rest.get(PRESENCE))[0] == 200
    assert sim.stats()["faults"] == 3
    assert (await rest.control("GET", "/_sim/faults")) == {"faults": []}


async def test_faults_reach_the_sdk_login(sim: RingCentralSimulator) -> None:
    sim.add_fault("/restapi/oauth/token", 503)
    platform = SDK(sim.client_id, sim.client_secret, sim.url).platform()
    with pytest.raises(ApiException) as caught:
        await asyncio.to_thread(platform.login, jwt=sim.jwt)
    assert status_of(caught.value) == 503
    await asyncio.to_thread(platform.login, jwt=sim.jwt)


# ---- control API and statistics ---------------------------------------------------------------


async def control_error(rest: Rest, path: str, body: object) -> tuple[int, dict[str, str]]:
    async with rest.http.post(rest.sim.url + path, json=body) as response:
        return response.status, await response.json()


async def test_stats_count_requests_by_template_and_reset(
    sim: RingCentralSimulator, rest: Rest
) -> None:
    owner = sim.owner_extension_id
    await rest.get(f"{EXTENSIONS}/{owner}/presence")
    await rest.get(f"{EXTENSIONS}/{owner + 1000}/presence")
    await rest.get(f"/restapi/v1.0/account/{sim.account_id}/presence")
    await rest.ws_token()

    stats = await rest.control("GET", "/_sim/stats")

    assert stats["requests"]["GET /restapi/v1.0/account/~/extension/{id}/presence"] == 2
    assert stats["requests"]["GET /restapi/v1.0/account/{accountId}/presence"] == 1
    assert stats["requests"]["POST /restapi/oauth/token"] == 1
    assert stats["requests"]["POST /restapi/oauth/wstoken"] == 1
    assert stats["groups"] == {"light": 2, "medium": 0, "heavy": 1, "auth": 2}
    assert (stats["logins"], stats["ws_tokens"], stats["rate_limited"]) == (1, 1, 0)
    assert {"notifications", "sockets"} <= set(stats)
    reset = await rest.control("POST", "/_sim/stats/reset")
    assert reset["requests"] == {}


async def test_control_extensions_and_the_event_log(sim: RingCentralSimulator, rest: Rest) -> None:
    listing = await rest.control("GET", "/_sim/extensions")
    first = listing[0]
    assert set(first) == {"id", "extensionNumber", "name", "email", "type", "status", "presence"}
    owner = sim.owner_extension_id

    changed = await rest.control(
        "POST", f"/_sim/extensions/{owner}/presence", {"userStatus": "Busy", "message": "Focus"}
    )
    call = await rest.control("POST", f"/_sim/extensions/{owner}/call", {"state": "ringing"})
    await rest.control("POST", f"/_sim/extensions/{owner}/call", {"state": "hold"})

    assert changed["extension"]["presence"]["presenceStatus"] == "Busy"
    assert call["extension"]["presence"]["activeCalls"][0]["id"] == call["call_id"]
    held = sim.presence(owner)
    assert (held["telephonyStatus"], held["aggregatedTelephonyStatus"]) == ("OnHold", "OnHold")
    events = (await rest.control("GET", f"/_sim/events?extension_id={owner}"))["events"]
    assert [e["sequence"] for e in events] == [
        changed["sequence"],
        events[0]["sequence"] + 1,
        events[0]["sequence"] + 2,
    ]
    assert events[0]["fields"]["message"] == "Focus"
    assert all(isinstance(e["time"], float) for e in events)
    later = (await rest.control("GET", f"/_sim/events?after={events[1]['id']}"))["events"]
    assert [e["id"] for e in later] == [events[2]["id"]]

    for bad in ({"userStatus": "Sleeping"}, {"colour": "red"}, {"allowSeeMyPresence": "yes"}):
        status, _ = await control_error(rest, f"/_sim/extensions/{owner}/presence", bad)
        assert status == 400, bad
    status, _ = await control_error(rest, "/_sim/extensions/1/call", {"state": "ringing"})
    assert status == 404


async def test_added_and_disabled_users_show_up_in_the_listing(
    sim: RingCentralSimulator, rest: Rest
) -> None:
    created = await rest.control(
        "POST", "/_sim/extensions", {"firstName": "New", "lastName": "Hire", "email": "new@x.io"}
    )
    new_id = created["id"]
    _, record, _ = await rest.get(f"{EXTENSIONS}/{new_id}")
    assert (record["name"], record["status"], record["contact"]["email"]) == (
        "New Hire",
        "Enabled",
        "new@x.io",
    )
    await rest.control("POST", f"/_sim/extensions/{new_id}/disable")
    _, enabled, _ = await rest.get(f"{EXTENSIONS}?status=Enabled&perPage=max")
    assert new_id not in {r["id"] for r in enabled["records"]}
    _, record, _ = await rest.get(f"{EXTENSIONS}/{new_id}")
    assert record["status"] == "Disabled"


async def test_switches_default_to_the_guide_and_change_all_or_nothing(rest: Rest) -> None:
    assert await rest.control("GET", "/_sim/switches") == {
        "presence_bodies": "full",
        "ws_token_ttl": 30.0,
        "ws_token_single_use": True,
        "replay_delay": 0.0,
    }
    changed = await rest.control(
        "POST", "/_sim/switches", {"presence_bodies": "partial", "ws_token_ttl": 600}
    )
    assert (changed["presence_bodies"], changed["ws_token_ttl"]) == ("partial", 600.0)
    assert (await rest.ws_token())["expires_in"] == 10  # 600 s at time scale 60

    for bad, named in (
        ({"presence_bodies": "some"}, "presence_bodies"),
        ({"ws_token_ttl": 0}, "ws_token_ttl"),
        ({"ws_token_single_use": "no"}, "ws_token_single_use"),
        ({"replay_delay": -1}, "replay_delay"),
        ({"colour": "red"}, "colour"),
        # One bad value and nothing changes, not even the good one.
        ({"replay_delay": 5, "ws_token_ttl": "long"}, "ws_token_ttl"),
    ):
        status, body = await control_error(rest, "/_sim/switches", bad)
        assert (status, named in body["error"]) == (400, True), (bad, body)
    assert await rest.control("GET", "/_sim/switches") == changed
