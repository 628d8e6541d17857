"""Reading a big Slack directory at Slack's pace: users.list rate limits are waited out."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.people import SlackPeople
from tests.sim.slack_helpers import running_sim


async def test_a_rate_limited_directory_read_waits_and_still_reads_everyone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_sim(users=2_500) as sim, aiohttp.ClientSession() as http:
        # A client without slack_sdk's retry handler: the directory itself must wait, as it
        # does when Slack's Retry-After is longer than the handler's 15 s.
        client = AsyncWebClient(token=sim.bot_token, base_url=sim.url + "/api/", session=http)
        sim.inject_fault("users.list", 429, count=2, retry_after=1.0)
        people = SlackPeople(client, sim.team_id)
        with caplog.at_level(logging.INFO, logger="bot.slack.people"):
            found = await people.refresh()
    assert found == len([p for p in sim.users() if not p.get("is_bot")]) > 2_000
    waits = [r.getMessage() for r in caplog.records if "rate limited" in r.getMessage()]
    assert len(waits) == 2
