"""Signed events and clicks with missing or mistyped fields: logged once, ignored, never raised."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import Bot
from bot.slack import blocks
from tests.helpers import wait_until
from tests.integration.bot_harness import Sims, running_bot, simulators
from tests.log_capture import every_log_record


@pytest.fixture(params=["socket", "http"])
async def bot_and_sims(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Bot, Sims]]:
    extra = {"SLACK_APP_TOKEN": ""} if request.param == "http" else {}
    async with simulators() as sims, running_bot(sims, tmp_path / "bot.db", **extra) as bot:
        yield bot, sims


def click(sims: Sims, user: object, action: dict[str, Any]) -> dict[str, Any]:
    """A block_actions payload as Slack shapes it, with the parts under test replaced."""
    return {
        "type": "block_actions",
        "user": user,
        "api_app_id": sims.slack.app_id,
        "team": {"id": sims.slack.team_id},
        "trigger_id": "1.2.3",
        "actions": [action],
    }


async def test_malformed_events_and_clicks_are_ignored_with_one_line_each(
    bot_and_sims: tuple[Bot, Sims],
) -> None:
    bot, sims = bot_and_sims
    asker, other = sims.people()[0], sims.people()[1]
    assert asker.slack_id is not None
    events: list[tuple[dict[str, Any], str]] = [
        ({"type": "app_home_opened", "tab": "home", "channel": "D1"}, "app_home_opened event"),
        ({"type": "app_home_opened", "user": {"id": asker.slack_id}}, "app_home_opened event"),
        ({"type": "tokens_revoked", "tokens": {"oauth": asker.slack_id}}, "tokens_revoked event"),
        ({"type": "tokens_revoked", "tokens": {"oauth": [7, None]}}, "tokens_revoked entry"),
        ({"type": "user_status_changed", "user": "U1"}, "user_status_changed event"),
        ({"type": "user_status_changed", "user": {"profile": {}}}, "user_status_changed event"),
    ]
    clicks: list[tuple[dict[str, Any], str]] = [
        (click(sims, "U1", {"action_id": blocks.NOTIFY_ACTION, "value": "U2"}), "notify button"),
        (
            click(sims, {"id": asker.slack_id}, {"action_id": blocks.CANCEL_WATCH_ACTION}),
            "cancel button",
        ),
        (
            click(sims, {"id": asker.slack_id}, {"action_id": blocks.UNSTAR_ACTION, "value": 5}),
            "unstar button",
        ),
        (click(sims, None, {"action_id": blocks.SYNC_PAUSE_ACTION}), "preference click"),
        (click(sims, {}, {"action_id": blocks.STAR_ACTION}), "star pick"),
    ]
    with every_log_record() as logs:
        for event, what in events:
            before = logs.ignored(what)
            assert sims.slack.emit_raw_event(event) is not None
            await wait_until(lambda w=what, b=before: logs.ignored(w) > b, message=what)
        for payload, what in clicks:
            before = logs.ignored(what)
            delivery = await sims.slack.send_raw_interaction("interactive", payload)
            assert delivery["ack"] is not None, delivery
            await wait_until(lambda w=what, b=before: logs.ignored(w) > b, message=what)
        command = {
            "command": "/rcstatus",
            "text": "help",
            "team_id": sims.slack.team_id,
            "api_app_id": sims.slack.app_id,
        }
        delivery = await sims.slack.send_raw_interaction("slash_commands", command)
        assert delivery["ack"] is not None, delivery
        await wait_until(lambda: logs.ignored("/rcstatus command") == 1, message="the command")

        # The bot still answers a normal command, and the malformed ones changed nothing.
        outcome = await sims.slack.send_command(
            asker.slack_id, "/rcstatus", f"<@{other.slack_id}>", wait=5, expect_responses=1
        )
        assert outcome["responses"], outcome
    failures = [r for r in logs.records if r.levelno >= logging.ERROR or r.exc_info]
    assert failures == [], [r.getMessage() for r in failures]
    assert (await bot.store.preferences(bot.team_id, asker.slack_id)).paused is False
    assert sims.slack.messages(kind="dm") == []
