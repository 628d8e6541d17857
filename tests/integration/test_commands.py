"""/rcstatus, its buttons, notify-when-free and App Home, delivered through the Slack simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import Bot
from bot.presence import Availability
from bot.sim.company import Person
from tests.helpers import wait_until
from tests.integration.bot_harness import Sims, connect, running_bot, simulators


def reply_text(outcome: dict[str, Any]) -> str:
    """Everything the person sees in the ephemeral reply: fallback text and blocks."""
    responses = outcome.get("responses") or []
    assert responses, outcome
    last = responses[-1]
    return last.get("text", "") + json.dumps(last.get("blocks") or [], ensure_ascii=False)


async def command(sims: Sims, person: Person, text: str) -> dict[str, Any]:
    assert person.slack_id is not None
    return await sims.slack.send_command(
        person.slack_id, "/rcstatus", text, wait=5.0, expect_responses=1
    )


@pytest.fixture(params=["socket", "http"])
async def bot_and_sims(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Bot, Sims]]:
    extra = {"SLACK_APP_TOKEN": ""} if request.param == "http" else {}
    async with simulators() as sims, running_bot(sims, tmp_path / "bot.db", **extra) as bot:
        yield bot, sims


def mention(person: Person) -> str:
    return f"<@{person.slack_id}>"


async def test_lookup_says_each_availability_in_words(bot_and_sims: tuple[Bot, Sims]) -> None:
    bot, sims = bot_and_sims
    asker, *people = sims.people()
    on_call, dnd, meeting, offline, hidden, free = people[:6]
    for person in (on_call, dnd, meeting, offline, hidden):
        assert person.extension_id is not None
    sims.call(on_call, "connected")
    sims.rc.set_presence(dnd.extension_id, dndStatus="DoNotAcceptAnyCalls")
    sims.rc.set_presence(meeting.extension_id, meetingStatus="Connected")
    sims.rc.set_presence(offline.extension_id, presenceStatus="Offline", userStatus="Offline")
    sims.rc.set_presence(hidden.extension_id, allowSeeMyPresence=False)
    await wait_until(
        lambda: bot.availability(str(hidden.slack_id)) is Availability.HIDDEN,
        message="presence changes to arrive",
    )
    expectations = [
        (on_call, "On a call", True),
        (dnd, "Do not disturb", True),
        (meeting, "In a meeting", True),
        (offline, "Offline", True),
        (hidden, "doesn't share phone presence", False),
        (free, "Available", False),
    ]
    for person, words, has_button in expectations:
        text = reply_text(await command(sims, asker, mention(person)))
        assert words in text, (words, text)
        assert ("Notify me when free" in text) is has_button, (words, text)
        assert "+1" not in text  # never a phone number
    slack_only = next(p for p in sims.company.people if p.extension_id is None and p.slack_id)
    text = reply_text(await command(sims, asker, mention(slack_only)))
    assert "not linked to a RingCentral extension" in text


async def test_bare_command_help_and_nonsense_get_helpful_replies(
    bot_and_sims: tuple[Bot, Sims],
) -> None:
    _bot, sims = bot_and_sims
    me = sims.people()[0]
    bare = reply_text(await command(sims, me, ""))
    # Their own state, with the way to connect: not the list of commands.
    assert sims.app_url + "/slack/install" in bare, bare
    assert "/rcstatus notify" not in bare, bare
    help_text = reply_text(await command(sims, me, "help"))
    assert "/rcstatus notify @alice" in help_text
    assert "don't know" not in help_text
    nonsense = reply_text(await command(sims, me, "flibbertigibbet"))
    assert "I don't know the command “flibbertigibbet”" in nonsense, nonsense
    assert "/rcstatus notify @alice" in nonsense, nonsense


async def test_notify_fires_once_after_the_call_ends(bot_and_sims: tuple[Bot, Sims]) -> None:
    bot, sims = bot_and_sims
    watcher, target = sims.people()[0], sims.people()[1]
    sims.call(target, "connected")
    await wait_until(lambda: bot.availability(str(target.slack_id)) is Availability.ON_CALL)
    reply = reply_text(await command(sims, watcher, f"notify {mention(target)} for 2h"))
    assert "I'll DM you" in reply or "DM you" in reply, reply
    sims.call(target, "ended")
    await wait_until(lambda: bot.stats().free_dms_sent == 1, timeout=15, message="the free DM")
    dms = sims.slack.messages(user=watcher.slack_id, kind="dm")
    assert len(dms) == 1
    assert f"<@{target.slack_id}> is free now" in dms[0]["text"]
    assert "on the phone for" in dms[0]["text"] or "busy for" in dms[0]["text"]


async def test_a_free_target_is_answered_at_once_without_a_watch(
    bot_and_sims: tuple[Bot, Sims],
) -> None:
    bot, sims = bot_and_sims
    watcher, target = sims.people()[2], sims.people()[3]
    reply = reply_text(await command(sims, watcher, f"notify {mention(target)}"))
    assert "is available now; no need to wait" in reply
    assert await bot.store.watches_for(bot.team_id, str(watcher.slack_id)) == []


async def test_back_to_back_calls_do_not_fire_and_a_star_changes_the_board(
    tmp_path: Path,
) -> None:
    async with (
        simulators() as sims,
        running_bot(sims, tmp_path / "bot.db", FREE_DEBOUNCE_SECONDS="3") as bot,
    ):
        watcher, target = sims.people()[0], sims.people()[1]
        sims.call(target, "connected")
        await wait_until(lambda: bot.availability(str(target.slack_id)) is Availability.ON_CALL)
        await command(sims, watcher, f"notify {mention(target)}")
        sims.call(target, "ended")
        sims.call(target, "ringing")
        sims.call(target, "connected")
        await wait_until(lambda: bot.availability(str(target.slack_id)) is Availability.ON_CALL)
        # App Home: open it, star the busy target, and the board shows them on a call.
        assert watcher.slack_id is not None
        sims.slack.open_app_home(watcher.slack_id)
        await wait_until(lambda: watcher.slack_id in sims.slack.views(), message="home view")
        home = json.dumps(sims.slack.views()[watcher.slack_id], ensure_ascii=False)
        for section in ("Your phone status", "Watching", "Starred colleagues"):
            assert section.lower() in home.lower(), section
        await sims.slack.click(
            watcher.slack_id, "star", str(target.slack_id), view="home", expect_responses=0
        )
        await wait_until(
            lambda: "On a call" in json.dumps(sims.slack.views()[watcher.slack_id]),
            message="the starred colleague on the board",
        )
        assert bot.stats().free_dms_sent == 0
        assert sims.slack.messages(user=watcher.slack_id, kind="dm") == []
        # The board follows the colleague without the watcher opening Home again.
        sims.call(target, "ended")
        await wait_until(
            lambda: "On a call" not in json.dumps(sims.slack.views()[watcher.slack_id]),
            message="the board republished once the starred colleague hung up",
        )


@pytest.fixture
async def shared_bot(tmp_path: Path) -> AsyncIterator[tuple[Bot, Sims]]:
    async with simulators() as sims, running_bot(sims, tmp_path / "bot.db") as bot:
        yield bot, sims


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=st.text(max_size=300))
@pytest.mark.slow
async def test_any_command_text_is_acked_with_a_helpful_reply(
    text: str, shared_bot: tuple[Bot, Sims]
) -> None:
    _bot, sims = shared_bot
    outcome = await command(sims, sims.people()[0], text)
    assert outcome["ack"] is not None, outcome
    reply = reply_text(outcome)
    assert "Traceback" not in reply
    assert "/rcstatus" in reply or "RingCentral" in reply or "<@" in reply or reply.strip()


@pytest.mark.parametrize(
    "tamper", [{"signing_secret": "not-the-apps-secret"}, {"timestamp_skew": -301}]
)
async def test_http_mode_refuses_bad_signatures_and_stale_timestamps(
    tmp_path: Path, tamper: dict[str, Any]
) -> None:
    async with (
        simulators() as sims,
        running_bot(sims, tmp_path / "bot.db", SLACK_APP_TOKEN="") as bot,
    ):
        asker = sims.people()[0]
        assert not bot.settings.socket_mode
        sims.slack.configure_delivery(**tamper)
        outcome = await sims.slack.send_command(str(asker.slack_id), "/rcstatus", "help", wait=1)
        assert outcome["http_status"] == 401
        assert outcome["ack"] is None
        assert outcome["responses"] == []


async def test_a_watch_survives_a_restart_before_the_call_ends(tmp_path: Path) -> None:
    database = tmp_path / "bot.db"
    async with simulators() as sims:
        watcher, target = sims.people()[0], sims.people()[1]
        async with running_bot(sims, database, FREE_DEBOUNCE_SECONDS="1") as bot:
            sims.call(target, "connected")
            await wait_until(lambda: bot.availability(str(target.slack_id)) is Availability.ON_CALL)
            reply = reply_text(await command(sims, watcher, f"notify {mention(target)}"))
            assert "DM you" in reply
        sims.call(target, "ended")  # while the bot is down
        async with running_bot(sims, database, FREE_DEBOUNCE_SECONDS="1") as bot:
            await wait_until(
                lambda: bot.stats().free_dms_sent == 1, timeout=15, message="the free DM"
            )
        dms = sims.slack.messages(user=watcher.slack_id, kind="dm")
        assert len(dms) == 1
        assert f"<@{target.slack_id}> is free now" in dms[0]["text"]


async def test_every_other_subcommand_answers_in_words(bot_and_sims: tuple[Bot, Sims]) -> None:
    bot, sims = bot_and_sims
    owner = sims.company.people[0]  # the workspace owner may link others
    member, target = sims.people()[2], sims.people()[3]
    assert owner.slack_role == "owner"
    assert member.slack_id is not None
    sims.call(target, "connected")
    await wait_until(lambda: bot.availability(str(target.slack_id)) is Availability.ON_CALL)

    assert "/slack/install" in reply_text(await command(sims, member, "connect"))
    await connect(sims, member)
    paused = reply_text(await command(sims, member, "pause"))
    assert "paused" in paused.lower()
    assert (await bot.store.preferences(bot.team_id, member.slack_id)).paused
    resumed = reply_text(await command(sims, member, "resume"))
    assert not (await bot.store.preferences(bot.team_id, member.slack_id)).paused
    assert resumed != paused
    settings_reply = reply_text(await command(sims, member, "settings policy replace"))
    assert "replace" in settings_reply.lower()
    assert (await bot.store.preferences(bot.team_id, member.slack_id)).policy == "replace"

    await command(sims, member, f"notify {mention(target)} for 30m")
    assert mention(target) in reply_text(await command(sims, member, "watches"))
    assert "stopped watching" in reply_text(
        await command(sims, member, f"cancel {mention(target)}")
    )
    assert await bot.store.watches_on(bot.team_id, str(target.slack_id)) == []

    spare = next(p for p in sims.company.people if p.extension_id and not p.slack_id)
    assert spare.extension_number is not None
    refused = reply_text(
        await command(sims, member, f"link {mention(target)} {spare.extension_number}")
    )
    assert "admin" in refused.lower()
    linked = reply_text(
        await command(sims, owner, f"link {mention(target)} {spare.extension_number}")
    )
    assert f"{mention(target)} is now linked to extension {spare.extension_number}" in linked, (
        linked
    )
    link = await bot.store.link_for_user(bot.team_id, str(target.slack_id))
    assert link is not None
    assert link.extension_id == str(spare.extension_id)
    taken = reply_text(await command(sims, member, f"link {spare.extension_number}"))
    assert mention(target) in taken  # refused, naming who holds the extension
    unlinked = reply_text(await command(sims, owner, f"unlink {mention(target)}"))
    assert mention(target) in unlinked
    assert await bot.store.link_for_user(bot.team_id, str(target.slack_id)) is None
