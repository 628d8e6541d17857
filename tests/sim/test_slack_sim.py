"""The Slack simulator's Web API, OAuth codes, limits and faults, as slack_sdk sees them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sim.slack import SlackSimulator
from bot.sim.slack.state import DEFAULT_BOT_SCOPES
from tests.helpers import wait_until
from tests.sim.slack_helpers import authorize_code, control, running_sim

USER_SCOPES = "users.profile:write,users.profile:read"
# The bot writes statuses without reading them back; these tests read back to check the writes.
READ_WRITE = ("users.profile:write", "users.profile:read")


@pytest.fixture
async def sim() -> AsyncIterator[SlackSimulator]:
    async with running_sim() as simulator:
        yield simulator


def members(sim: SlackSimulator) -> list[str]:
    return [user["id"] for user in sim.users() if not user["is_admin"]]


def client(sim: SlackSimulator, token: str | None = None) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=sim.url + "/api/")


async def api_error(call: Awaitable[Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


async def test_user_token_from_oauth_sets_and_reads_own_status(sim: SlackSimulator) -> None:
    alice = members(sim)[0]
    code = await authorize_code(sim, alice, USER_SCOPES)
    web = client(sim)

    granted = await web.oauth_v2_access(
        client_id=sim.client_id, client_secret=sim.client_secret, code=code
    )

    user = granted["authed_user"]
    assert user["id"] == alice
    assert user["token_type"] == "user"
    assert user["access_token"].startswith("xoxp-")
    assert set(user["scope"].split(",")) == set(USER_SCOPES.split(","))
    assert granted["team"]["id"] == sim.team_id
    assert granted["is_enterprise_install"] is False
    assert granted["enterprise"] is None
    token = user["access_token"]
    expiration = int(time.time()) + 3600
    await web.users_profile_set(
        token=token,
        profile={
            "status_text": "On a call",
            "status_emoji": ":telephone_receiver:",
            "status_expiration": expiration,
        },
    )
    profile = (await web.users_profile_get(token=token))["profile"]
    assert (profile["status_text"], profile["status_emoji"], profile["status_expiration"]) == (
        "On a call",
        ":telephone_receiver:",
        expiration,
    )
    # A code is single-use.
    reused = await api_error(
        web.oauth_v2_access(client_id=sim.client_id, client_secret=sim.client_secret, code=code)
    )
    assert reused.response["error"] == "invalid_code"


async def test_code_exchange_checks_client_credentials(sim: SlackSimulator) -> None:
    code = await authorize_code(sim, members(sim)[0], USER_SCOPES)
    wrong = await api_error(
        client(sim).oauth_v2_access(client_id=sim.client_id, client_secret="nope", code=code)
    )
    assert wrong.response["error"] == "bad_client_secret"


async def test_bot_tokens_cannot_set_profiles(sim: SlackSimulator) -> None:
    refused = await api_error(
        client(sim, sim.bot_token).users_profile_set(
            profile={"status_text": "hi", "status_emoji": ":wave:"}
        )
    )
    assert refused.response.status_code == 200
    assert refused.response["error"] == "not_allowed_token_type"


async def test_status_text_is_limited_to_100_characters(sim: SlackSimulator) -> None:
    alice = members(sim)[0]
    web = client(sim, sim.grant_user_token(alice))

    await web.users_profile_set(profile={"status_text": "x" * 100, "status_emoji": ":x:"})
    too_long = await api_error(
        web.users_profile_set(profile={"status_text": "y" * 101, "status_emoji": ":x:"})
    )

    assert too_long.response["error"] == "too_long"
    assert sim.user(alice)["status_text"] == "x" * 100


async def test_clearing_takes_both_fields(sim: SlackSimulator) -> None:
    alice = members(sim)[0]
    web = client(sim, sim.grant_user_token(alice, READ_WRITE))
    await web.users_profile_set(profile={"status_text": "Lunch", "status_emoji": ":taco:"})

    half = await api_error(web.users_profile_set(profile={"status_text": ""}))
    assert half.response["error"] == "must_clear_both_status_text_and_status_emoji"
    await web.users_profile_set(profile={"status_text": "", "status_emoji": ""})

    profile = (await web.users_profile_get())["profile"]
    assert (profile["status_text"], profile["status_emoji"]) == ("", "")


async def test_expired_status_reads_back_cleared(sim: SlackSimulator) -> None:
    alice = members(sim)[0]
    web = client(sim, sim.grant_user_token(alice, READ_WRITE))
    await web.users_profile_set(
        profile={
            "status_text": "Brb",
            "status_emoji": ":coffee:",
            "status_expiration": int(time.time()) + 2,  # at least a second from now
        }
    )
    assert (await web.users_profile_get())["profile"]["status_text"] == "Brb"

    async def cleared() -> bool:
        profile = (await web.users_profile_get())["profile"]
        return (profile["status_text"], profile["status_emoji"], profile["status_expiration"]) == (
            "",
            "",
            0,
        )

    await wait_until(cleared)


async def test_eleventh_write_to_one_profile_in_a_minute_is_rate_limited(
    sim: SlackSimulator,
) -> None:
    alice = members(sim)[0]
    web = client(sim, sim.grant_user_token(alice))

    def write(n: int) -> Awaitable[Any]:
        return web.users_profile_set(profile={"status_text": f"n{n}", "status_emoji": ":one:"})

    for n in range(10):
        await write(n)
    limited = await api_error(write(10))
    assert limited.response.status_code == 429
    assert limited.response["error"] == "ratelimited"
    assert int(limited.response.headers["Retry-After"]) >= 1
    assert sim.stats()["rate_limited"] == {"users.profile.set": 1}

    refusals: list[int] = []

    async def accepted_again() -> bool:
        try:
            await write(11)
        except SlackApiError as error:
            refusals.append(error.response.status_code)
            return False
        return True

    await wait_until(accepted_again, interval=0.1)
    assert set(refusals) <= {429}
    assert sim.user(alice)["status_text"] == "n11"


async def test_admin_rules_for_setting_someone_else(sim: SlackSimulator) -> None:
    users = sim.users()
    owner = next(u["id"] for u in users if u["is_owner"])
    admin = next(u["id"] for u in users if u["is_admin"] and not u["is_owner"])
    alice, bob = members(sim)[:2]
    status = {"status_text": "Set by admin", "status_emoji": ":lock:"}

    as_member = await api_error(
        client(sim, sim.grant_user_token(alice)).users_profile_set(user=bob, profile=status)
    )
    admin_web = client(sim, sim.grant_user_token(admin))
    on_owner = await api_error(admin_web.users_profile_set(user=owner, profile=status))
    await admin_web.users_profile_set(user=bob, profile=status)

    assert as_member.response["error"] == "not_admin"
    assert on_owner.response["error"] == "cannot_update_admin_user"
    assert sim.user(bob)["status_text"] == "Set by admin"


async def test_per_token_distinct_profile_limit(sim: SlackSimulator) -> None:
    async with running_sim(users=40, profiles_per_token=3) as small:
        admin = next(u["id"] for u in small.users() if u["is_admin"] and not u["is_owner"])
        web = client(small, small.grant_user_token(admin))
        targets = [u["id"] for u in small.users() if not u["is_admin"]][:4]
        status = {"status_text": "Away", "status_emoji": ":zzz:"}
        for target in targets[:3]:
            await web.users_profile_set(user=target, profile=status)
        # The same three profiles may still be written; a fourth one may not.
        await web.users_profile_set(user=targets[0], profile=status)
        fourth = await api_error(web.users_profile_set(user=targets[3], profile=status))
        assert fourth.response.status_code == 429


async def test_token_and_scope_errors(sim: SlackSimulator) -> None:
    alice = members(sim)[0]
    profile_only = sim.grant_user_token(alice, scopes=["users.profile:write"])

    missing = await api_error(client(sim, profile_only).users_info(user=alice))
    invalid = await api_error(client(sim, "xoxb-not-a-token").auth_test())
    unauthenticated = await api_error(client(sim).users_info(user=alice))
    app_on_web_api = await api_error(client(sim, sim.app_token).users_info(user=alice))
    bot_on_socket = await api_error(client(sim).apps_connections_open(app_token=sim.bot_token))
    sim.revoke(alice)
    revoked = await api_error(client(sim, profile_only).auth_test())

    assert missing.response["error"] == "missing_scope"
    assert missing.response["needed"] == "users:read"
    assert missing.response["provided"] == "users.profile:write"
    assert invalid.response["error"] == "invalid_auth"
    assert unauthenticated.response["error"] == "not_authed"
    assert app_on_web_api.response["error"] == "not_allowed_token_type"
    assert bot_on_socket.response["error"] == "not_allowed_token_type"
    assert revoked.response["error"] == "token_revoked"
    assert not sim.user(alice)["authorized"]


async def test_auth_test_tells_bot_from_user(sim: SlackSimulator) -> None:
    alice = members(sim)[0]
    bot = await client(sim, sim.bot_token).auth_test()
    user = await client(sim, sim.grant_user_token(alice)).auth_test()
    assert (bot["user_id"], bot["team_id"], bot["bot_id"].startswith("B")) == (
        sim.bot_user_id,
        sim.team_id,
        True,
    )
    assert user["user_id"] == alice
    assert "bot_id" not in user.data


async def test_sync_client_pages_users_and_looks_up_emails(sim: SlackSimulator) -> None:
    web = WebClient(token=sim.bot_token, base_url=sim.url + "/api/")

    def list_everyone() -> list[dict[str, object]]:
        found: list[dict[str, object]] = []
        cursor = None
        while True:
            page = web.users_list(limit=5, cursor=cursor)
            found += page["members"]
            cursor = page["response_metadata"]["next_cursor"]
            if not cursor:
                return found

    everyone = await asyncio.to_thread(list_everyone)
    humans = sim.users()
    email = str(humans[3]["email"])
    found = await asyncio.to_thread(web.users_lookupByEmail, email=email.upper())
    with pytest.raises(SlackApiError) as missing:
        await asyncio.to_thread(web.users_lookupByEmail, email="nobody@example.com")

    ids = [str(member["id"]) for member in everyone]
    assert len(ids) == len(set(ids))
    assert {u["id"] for u in humans} <= set(ids)
    assert sim.bot_user_id in ids
    assert "USLACKBOT" in ids
    assert found["user"]["id"] == humans[3]["id"]
    assert found["user"]["profile"]["email"] == email
    assert missing.value.response["error"] == "users_not_found"


async def test_messages_dms_and_home_views_are_recorded() -> None:
    # The bot never opens conversations (a user id as channel needs only chat:write); an app
    # that does needs im:write, which the simulator checks.
    async with running_sim(bot_scopes=DEFAULT_BOT_SCOPES | {"im:write"}) as sim:
        await _messages_dms_and_home_views_are_recorded(sim)


async def _messages_dms_and_home_views_are_recorded(sim: SlackSimulator) -> None:
    alice = members(sim)[0]
    web = client(sim, sim.bot_token)
    first = await web.conversations_open(users=alice)
    again = await web.conversations_open(users=alice)
    channel = first["channel"]["id"]
    await web.chat_postMessage(channel=alice, text="Bob is free now")
    await web.chat_postMessage(channel=channel, text="Second", blocks=[{"type": "divider"}])
    home = {
        "type": "home",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Hi"}}],
    }
    await web.views_publish(user_id=alice, view=home)
    general = await api_error(
        web.chat_postMessage(channel=sim.identity.general_channel_id, text="x")
    )

    assert channel.startswith("D")
    assert again["channel"]["id"] == channel
    assert again["already_open"] is True
    status, listed = await control(sim, "GET", f"/_sim/messages?user={alice}")
    assert status == 200
    assert [(m["kind"], m["channel"], m["text"]) for m in listed["messages"]] == [
        ("dm", channel, "Bob is free now"),
        ("dm", channel, "Second"),
    ]
    assert listed["messages"][1]["blocks"] == [{"type": "divider"}]
    assert sim.views()[alice]["blocks"] == home["blocks"]
    assert general.response["error"] == "not_in_channel"


async def test_injected_faults_then_recovery(sim: SlackSimulator) -> None:
    alice = members(sim)[0]
    web = client(sim, sim.bot_token)
    status, _ = await control(
        sim, "POST", "/_sim/faults", {"method": "users.info", "status": 500, "count": 1}
    )
    assert status == 200
    sim.inject_fault("users.lookupByEmail", 429, count=1, retry_after=7)

    failed = await api_error(web.users_info(user=alice))
    limited = await api_error(web.users_lookupByEmail(email=str(sim.user(alice)["email"])))
    recovered = await web.users_info(user=alice)

    assert failed.response.status_code == 500
    assert limited.response.status_code == 429
    assert limited.response.headers["Retry-After"] == "7"
    assert recovered["user"]["id"] == alice
    _, stats = await control(sim, "GET", "/_sim/stats")
    assert stats["calls"]["users.info"] == 2
    assert stats["rate_limited"]["users.lookupByEmail"] == 1


async def test_faults_for_one_method_are_used_in_the_order_injected(sim: SlackSimulator) -> None:
    alice = members(sim)[0]
    web = client(sim, sim.bot_token)
    sim.inject_fault("chat.postMessage", 429, count=1, retry_after=2)
    sim.inject_fault("chat.postMessage", 500, count=1)

    limited = await api_error(web.chat_postMessage(channel=alice, text="one"))
    failed = await api_error(web.chat_postMessage(channel=alice, text="two"))
    posted = await web.chat_postMessage(channel=alice, text="three")

    assert (limited.response.status_code, limited.response["error"]) == (429, "ratelimited")
    assert limited.response.headers["Retry-After"] == "2"
    assert failed.response.status_code == 500
    assert posted["ok"]
    assert [m["text"] for m in sim.messages(alice, "dm")] == ["three"]


async def test_manual_status_and_profile_write_log(sim: SlackSimulator) -> None:
    alice, bob = members(sim)[:2]
    status, body = await control(
        sim,
        "POST",
        f"/_sim/users/{alice}/status",
        {"status_text": "In the garden", "status_emoji": ":sunflower:", "status_expiration": 0},
    )
    await client(sim, sim.grant_user_token(bob)).users_profile_set(
        profile={"status_text": "On a call", "status_emoji": ":telephone_receiver:"}
    )

    assert status == 200
    assert body["user"]["status_text"] == "In the garden"
    _, listed = await control(sim, "GET", "/_sim/users")
    by_id = {u["id"]: u for u in listed["users"]}
    assert by_id[alice]["status_emoji"] == ":sunflower:"
    assert by_id[bob]["authorized"] is True
    assert by_id[alice]["authorized"] is False
    _, log = await control(sim, "GET", "/_sim/profile_writes")
    assert [(w["user"], w["text"]) for w in log["writes"]] == [(bob, "On a call")]
    await control(sim, "POST", "/_sim/stats/reset")
    _, stats = await control(sim, "GET", "/_sim/stats")
    assert stats["calls"] == {}
    assert stats["profile_writes"] == 0


async def test_socket_mode_events_are_retried_until_acked(sim: SlackSimulator) -> None:
    opened = await client(sim).apps_connections_open(app_token=sim.app_token)
    alice = members(sim)[0]
    async with aiohttp.ClientSession() as session, session.ws_connect(opened["url"]) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello"
        await wait_until(lambda: sim.socket_connections == 1)
        sim.set_status(alice, "Walking", ":walking:")

        first = await ws.receive_json(timeout=5)
        retry = await ws.receive_json(timeout=10)  # we never acked the first one
        await ws.send_str(json.dumps({"envelope_id": retry["envelope_id"]}))
        await wait_until(lambda: sim.stats()["events"].get("acked") == 1)

    assert first["type"] == "events_api"
    assert first["payload"]["type"] == "event_callback"
    event = first["payload"]["event"]
    assert event["type"] == "user_status_changed"
    assert event["user"]["id"] == alice
    assert event["user"]["profile"]["status_text"] == "Walking"
    assert (first["retry_attempt"], retry["retry_attempt"]) == (0, 1)
    assert retry["payload"]["event_id"] == first["payload"]["event_id"]
    # The ticket in a Socket Mode URL works once.
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(opened["url"])
