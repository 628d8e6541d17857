"""Snooze during calls, huddle → RingCentral Busy, workspace defaults and wording by call type,
through both simulators and the bot as `rcstatus-bot run` wires it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.presence import Availability, PresenceStatus
from bot.roster import PersonChange, Roster
from bot.sim.company import Person
from bot.slack.snooze import SnoozeKeeper
from tests.helpers import ControlClient, wait_until
from tests.integration.bot_harness import (
    Sims,
    connect,
    connect_quickly,
    running_bot,
    simulators,
)

ON_A_CALL = ("On a call", ":telephone_receiver:")


def reply_text(outcome: dict[str, Any]) -> str:
    responses = outcome.get("responses") or []
    assert responses, outcome
    last = responses[-1]
    return str(last.get("text", "")) + json.dumps(last.get("blocks") or [], ensure_ascii=False)


async def command(sims: Sims, person: Person, text: str) -> str:
    assert person.slack_id is not None
    outcome = await sims.slack.send_command(
        person.slack_id, "/rcstatus", text, wait=5.0, expect_responses=1
    )
    return reply_text(outcome)


def shows(sims: Sims, person: Person) -> tuple[str, str]:
    profile = sims.profile(person)
    return profile["status_text"], profile["status_emoji"]


@pytest.fixture
async def controls(tmp_path: Path) -> AsyncIterator[tuple[Sims, aiohttp.ClientSession]]:
    async with simulators() as sims, aiohttp.ClientSession() as http:
        yield sims, http


async def test_snooze_covers_the_call_and_leaves_someone_already_in_dnd_as_they_were(
    controls: tuple[Sims, aiohttp.ClientSession], tmp_path: Path
) -> None:
    sims, http = controls
    slack = ControlClient(sims.slack.url, http)
    quiet, busy_already, not_opted, scheduled = sims.people()[:4]
    async with running_bot(sims, tmp_path / "bot.db") as bot:
        for person in (quiet, busy_already, not_opted, scheduled):
            await connect(sims, person)
        reply = await command(sims, quiet, "settings snooze on")
        assert "snoozed" in reply
        assert "connect again" not in reply
        assert "snoozed" in await command(sims, scheduled, "settings snooze on")
        # Someone who connected before the dnd scopes were asked for is told to connect again.
        earlier = sims.people()[4]
        await connect_quickly(sims, bot, [earlier])
        assert "connect again" in await command(sims, earlier, "settings snooze on")
        # Inside their Do Not Disturb schedule (Slack's clock: unix seconds).
        now = int(time.time())
        await slack.post(f"users/{scheduled.slack_id}/dnd", {"schedule": [now - 60, now + 3600]})
        # The other turns it on from App Home, with the button the Home tab shows.
        assert busy_already.slack_id is not None
        sims.slack.open_app_home(busy_already.slack_id)
        await wait_until(lambda: busy_already.slack_id in sims.slack.views(), message="home")
        home = json.dumps(sims.slack.views()[busy_already.slack_id], ensure_ascii=False)
        assert "Turn snooze during calls on" in home
        await sims.slack.click(
            busy_already.slack_id, "toggle_snooze", "on", view="home", expect_responses=0
        )
        await wait_until(
            lambda: (
                "Turn snooze during calls off"
                in json.dumps(sims.slack.views()[str(busy_already.slack_id)], ensure_ascii=False)
            ),
            message="the Home tab to show snooze on",
        )
        # Their own snooze, set in Slack before the call.
        own = await slack.post(f"users/{busy_already.slack_id}/dnd", {"snooze_minutes": 30})
        own_end = own["user"]["snooze_endtime"]
        assert own["user"]["snooze_enabled"]
        assert own_end

        for person in (quiet, busy_already, not_opted, scheduled):
            sims.call(person, "connected")

        async def user(person: Person) -> dict[str, Any]:
            found: dict[str, Any] = (await slack.get(f"users/{person.slack_id}"))["user"]
            return found

        async def snoozed(person: Person) -> bool:
            return bool((await user(person))["snooze_enabled"])

        await wait_until(lambda: snoozed(quiet), message="the caller's notifications snoozed")
        await wait_until(lambda: shows(sims, quiet) == ON_A_CALL, message="On a call")
        await wait_until(
            lambda: bot.stats().snooze.left_alone == 2, message="the two already in DND noticed"
        )
        assert not await snoozed(scheduled)
        assert (await user(busy_already))["snooze_endtime"] == own_end
        assert not await snoozed(not_opted)

        for person in (quiet, busy_already, not_opted, scheduled):
            sims.call(person, "ended")
        await wait_until(lambda: bot.stats().snooze.ended == 1, message="our snooze ended")
        assert not await snoozed(quiet)
        # Exactly as they were: still snoozed, until the same moment.
        after = await user(busy_already)
        assert after["snooze_enabled"]
        assert after["snooze_endtime"] == own_end
        calls = (await slack.get("snoozes"))["calls"]
        assert [(c["user"], c["method"]) for c in calls] == [
            (quiet.slack_id, "dnd.setSnooze"),
            (quiet.slack_id, "dnd.endSnooze"),
        ]

        # A call still going when the bot stops: its snooze is ended on the way out.
        sims.call(quiet, "connected")
        await wait_until(lambda: snoozed(quiet), message="snoozed for the second call")
    assert not await snoozed(quiet)


async def test_a_huddle_shows_busy_in_ringcentral_and_puts_back_what_was_there(
    controls: tuple[Sims, aiohttp.ClientSession], tmp_path: Path
) -> None:
    sims, http = controls
    slack = ControlClient(sims.slack.url, http)
    rc = ControlClient(sims.rc.url, http)
    huddler, asker, not_opted = sims.people()[:3]
    assert huddler.extension_id is not None
    assert not_opted.extension_id is not None
    ext = huddler.extension_id

    async def user_status(extension_id: int) -> str:
        found = await rc.get(f"extensions/{extension_id}")
        return str(found["presence"]["userStatus"])

    async with running_bot(sims, tmp_path / "bot.db") as bot:
        await connect(sims, huddler)
        assert "Busy" in await command(sims, huddler, "settings huddle busy")

        await slack.post(f"users/{huddler.slack_id}/huddle", {"in_huddle": True})
        await slack.post(f"users/{not_opted.slack_id}/huddle", {"in_huddle": True})
        await wait_until(
            lambda: bot.availability(str(huddler.slack_id)) is Availability.BUSY,
            message="RingCentral to report the huddler Busy",
        )
        assert await user_status(ext) == "Busy"
        assert await user_status(not_opted.extension_id) == "Available"
        assert "Busy" in await command(sims, asker, f"<@{huddler.slack_id}>")

        await slack.post(f"users/{huddler.slack_id}/huddle", {"in_huddle": False})
        await wait_until(
            lambda: bot.availability(str(huddler.slack_id)) is Availability.AVAILABLE,
            message="the huddler's own presence back",
        )
        assert await user_status(ext) == "Available"

        # A second huddle, during which they set themselves Offline: theirs is kept.
        await slack.post(f"users/{huddler.slack_id}/huddle", {"in_huddle": True})
        await wait_until(lambda: bot.stats().huddles.set_busy == 2, message="Busy again")
        sims.rc.set_presence(ext, userStatus="Offline")
        await wait_until(
            lambda: (
                (presence := bot.presence(str(ext))) is not None
                and presence.user_status is PresenceStatus.OFFLINE
            ),
            message="the bot to see their own change",
        )
        await slack.post(f"users/{huddler.slack_id}/huddle", {"in_huddle": False})
        await wait_until(lambda: bot.stats().huddles.kept_theirs == 1, message="theirs kept")
        assert await user_status(ext) == "Offline"
        await bot.settle()
        # Busy by hand is not a call: the bot never wrote "On a call" for any of it.
        assert not [w for w in sims.slack.profile_writes(user=huddler.slack_id)]

        # A third huddle still going when the bot stops: their Offline comes back first.
        await slack.post(f"users/{huddler.slack_id}/huddle", {"in_huddle": True})
        await wait_until(lambda: bot.stats().huddles.set_busy == 3, message="Busy a third time")
        assert await user_status(ext) == "Busy"
    assert await user_status(ext) == "Offline"


async def test_admin_defaults_reach_people_without_their_own_and_wording_follows_the_call(
    controls: tuple[Sims, aiohttp.ClientSession], tmp_path: Path
) -> None:
    sims, _http = controls
    admin = next(
        p
        for p in sims.people()
        if p.slack_role in ("admin", "owner", "primary_owner") and p.extension_id
    )
    member, chooser, caller, colleague = [
        p for p in sims.people() if p.slack_role == "member" and p is not admin
    ][:4]
    detailed = ",".join(str(p.extension_id) for p in (member, chooser, caller, colleague))
    async with running_bot(sims, tmp_path / "bot.db", RC_DETAILED_EXTENSIONS=detailed) as bot:
        for person in (member, chooser, caller, colleague):
            await connect(sims, person)
        refused = await command(sims, member, "admin defaults text Not allowed")
        assert "Only workspace admins" in refused
        assert "Phone time" in await command(sims, admin, "admin defaults text Phone time")
        assert "My own words" in await command(sims, chooser, "settings text My own words")

        sims.call(member, "connected")
        sims.call(chooser, "connected")
        await wait_until(lambda: shows(sims, member)[0] == "Phone time", message="the default")
        await wait_until(lambda: shows(sims, chooser)[0] == "My own words", message="their own")
        sims.call(member, "ended")
        sims.call(chooser, "ended")

        reply = await command(sims, admin, "admin defaults calltypes on")
        assert "On an incoming external call" in reply, reply
        # An external caller rings in; a colleague is called on their extension number.
        assert caller.extension_id
        assert colleague.extension_id
        assert member.extension_number
        sims.rc.call(caller.extension_id, "connected", direction="Inbound")
        sims.rc.call(
            colleague.extension_id,
            "connected",
            direction="Outbound",
            peer_number=member.extension_number,
        )
        await wait_until(
            lambda: shows(sims, caller)[0] == "On an incoming external call",
            message="external inbound wording",
        )
        await wait_until(
            lambda: shows(sims, colleague)[0] == "On an outgoing internal call",
            message="internal outbound wording",
        )
        # A person's own text for a call type wins over the built-in phrase.
        await command(sims, caller, "settings external text With a customer")
        await wait_until(lambda: shows(sims, caller)[0] == "With a customer", message="own")
        assert bot.stats().scheduler.rate_limited == 0


@pytest.mark.slow
async def test_two_hundred_snoozes_never_hold_back_a_status_write(tmp_path: Path) -> None:
    async with (
        simulators(users=230, scale=240.0) as sims,
        running_bot(sims, tmp_path / "bot.db") as bot,
    ):
        people = sims.people()[:200]
        assert len(people) == 200
        await connect_quickly(sims, bot, people)
        for person in people:
            assert person.slack_id is not None
            await bot.set_preferences(person.slack_id, snooze=True)
        # The worst case for the snoozes: Slack holds every dnd call back with 429s.
        sims.slack.inject_fault("dnd.info", 429, count=100_000, retry_after=1.0)
        for person in people:
            sims.call(person, "connected")

        settings = bot.settings
        # As for any burst: the writes per window Slack allows, one write each, with headroom.
        fastest = len(people) / settings.slack_profile_writes_per_minute
        deadline = settings.call_debounce_seconds + 4 * fastest * settings.rate_window_seconds + 5

        def all_on_a_call() -> bool:
            return all(shows(sims, p) == ON_A_CALL for p in people)

        await wait_until(all_on_a_call, timeout=deadline, message="everyone On a call, on time")
        stats = bot.stats()
        assert stats.snooze.snoozed == 0, stats.snooze  # every status went up without them
        assert stats.scheduler.rate_limited == 0

        sims.slack.inject_fault("dnd.info", 429, count=0)
        await wait_until(
            lambda: bot.stats().snooze.snoozed == len(people),
            timeout=30,
            message="every caller snoozed once Slack lets the dnd calls through",
        )
        limited = sims.slack.stats()["rate_limited"]
        assert "users.profile.set" not in limited, limited
        assert "dnd.setSnooze" not in limited, limited


async def test_the_simulated_dnd_methods_keep_slacks_token_scope_and_error_rules(
    controls: tuple[Sims, aiohttp.ClientSession],
) -> None:
    sims, _http = controls
    person = sims.people()[0]
    assert person.slack_id is not None
    api = AsyncWebClient(base_url=sims.slack.url + "/api/", retry_handlers=[])
    bot_token = sims.slack.identity.bot_token
    profile_only = sims.slack.grant_user_token(
        sims.people()[1].slack_id or "", ("users.profile:write",)
    )
    token = sims.slack.grant_user_token(person.slack_id)

    async def error(call: Awaitable[Any]) -> str:
        with pytest.raises(SlackApiError) as raised:
            await call
        return str(raised.value.response["error"])

    # setSnooze acts on the token's own user: user tokens only, with dnd:write.
    assert await error(api.dnd_setSnooze(token=bot_token, num_minutes=5)) == (
        "not_allowed_token_type"
    )
    assert await error(api.dnd_setSnooze(token=profile_only, num_minutes=5)) == "missing_scope"
    assert await error(api.api_call("dnd.setSnooze", params={"token": token})) == (
        "missing_duration"
    )
    assert await error(api.dnd_setSnooze(token=token, num_minutes=100_000)) == "too_long"
    assert await error(api.dnd_endSnooze(token=token)) == "snooze_not_active"

    snoozed = await api.dnd_setSnooze(token=token, num_minutes=5)
    assert snoozed["snooze_enabled"] is True
    assert snoozed["snooze_remaining"] == 300
    own = await api.dnd_info(token=token)
    assert own["snooze_endtime"] == snoozed["snooze_endtime"]
    # The bot asked for no dnd scope; a colleague with dnd:read sees no snooze_* fields.
    assert await error(api.dnd_info(token=bot_token, user=person.slack_id)) == "missing_scope"
    colleague = sims.slack.grant_user_token(sims.people()[2].slack_id or "", ("dnd:read",))
    seen = await api.dnd_info(token=colleague, user=person.slack_id)
    assert "snooze_enabled" not in seen.data
    ended = await api.dnd_endSnooze(token=token)
    assert ended["snooze_enabled"] is False

    # Tier 2: about twenty a minute, then 429 with Retry-After.
    statuses = []
    for _ in range(25):
        try:
            await api.dnd_setSnooze(token=token, num_minutes=5)
        except SlackApiError as refused:
            statuses.append((refused.response.status_code, refused.response.headers))
            break
    assert statuses, "Tier 2 let 25 calls through"
    assert statuses[0][0] == 429
    assert statuses[0][1].get("Retry-After")


async def test_a_long_call_renews_the_snooze_and_its_end_ends_it(
    controls: tuple[Sims, aiohttp.ClientSession],
) -> None:
    sims, _http = controls
    person = sims.people()[0]
    assert person.slack_id is not None
    user_id = person.slack_id
    token = sims.slack.grant_user_token(user_id)

    class Tokens:
        async def user_token(self, asked: str) -> str | None:
            return token if asked == user_id else None

    async def wanted(asked: str) -> bool:
        return True

    # A one-minute snooze renewed when less than 59.5 s are left: renewed within a second.
    keeper = SnoozeKeeper(
        roster=Roster(),
        client=AsyncWebClient(base_url=sims.slack.url + "/api/", retry_handlers=[]),
        tokens=Tokens(),
        wanted=wanted,
        window=sims.scale.seconds(60.0),
        snooze_minutes=1,
        renew_before=59.5,
    )
    since = datetime.now(UTC)
    task = asyncio.create_task(keeper.run())
    try:
        free, busy = Availability.AVAILABLE, Availability.ON_CALL
        await keeper.on_person_change(PersonChange(user_id, "1", free, busy, since, None))
        await wait_until(lambda: keeper.stats.renewed >= 1, message="the snooze renewed")
        assert sims.slack.user(user_id)["snooze_enabled"]
        await keeper.on_person_change(PersonChange(user_id, "1", busy, free, since, None))
        await wait_until(lambda: keeper.stats.ended == 1, message="the snooze ended")
        assert not sims.slack.user(user_id)["snooze_enabled"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
