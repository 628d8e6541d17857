"""What an operator watches: the probes while the bot starts, and /metrics behind its key."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.api.keys import ApiKeys
from bot.app import Bot
from tests.helpers import wait_until
from tests.integration.bot_harness import Sims, connect, simulators
from tests.log_capture import every_log_record


async def _get(session: aiohttp.ClientSession, url: str, key: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with session.get(url, headers=headers) as response:
        return response.status, await response.text()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _day(sims: Sims, bot: Bot) -> None:
    """A person connects, looks someone up, and takes a call: an event, a command, a write."""
    alice, bob = sims.people()[:2]
    await connect(sims, alice)
    outcome = await sims.slack.send_command(
        str(bob.slack_id), "/rcstatus", f"<@{alice.slack_id}>", wait=5.0, expect_responses=1
    )
    assert "Available" in str(outcome["responses"][-1]), outcome
    sims.call(alice, "connected")
    await wait_until(lambda: sims.profile(alice)["status_text"] == "On a call", message="status")
    await bot.settle()


@pytest.mark.slow
async def test_probes_while_starting_then_metrics_only_for_a_metrics_key(tmp_path: Path) -> None:
    async with simulators() as sims, aiohttp.ClientSession() as session:
        # RingCentral refuses the first login for 2 s, as its Auth group does after a crash loop.
        sims.rc.add_fault("/restapi/oauth/token", 429, retry_after=2)
        bot = await Bot.create(sims.settings(tmp_path / "bot.db", PORT=str(sims.port)))
        with every_log_record() as logs:
            starting = asyncio.create_task(bot.start())
            try:
                await wait_until(
                    lambda: "waiting" in logs.text(), message="the INFO line about the wait"
                )
                live, live_body = await _get(session, sims.app_url + "/healthz")
                ready, ready_body = await _get(session, sims.app_url + "/readyz")
                api, _ = await _get(session, sims.app_url + "/api/v1/people/U1")
                await starting
            except BaseException:
                starting.cancel()
                with contextlib.suppress(BaseException):
                    await starting
                await bot.stop()
                raise
        try:
            # Alive but not ready: a liveness probe would not restart it; traffic waits.
            assert live == 200, live_body
            assert '"started": false' in live_body
            assert ready == 503, ready_body
            assert "starting: logging in to RingCentral" in ready_body
            assert api == 503
            assert "RingCentral allows 5 logins and WebSocket tokens a minute; waiting 2s" in (
                logs.text()
            )
            await wait_until(lambda: bot.ready, timeout=20, message="the first snapshot")

            async def readyz_ok() -> bool:
                return (await _get(session, sims.app_url + "/readyz"))[0] == 200

            await wait_until(readyz_ok, message="/readyz 200 once connected")
            await _day(sims, bot)

            keys = ApiKeys(bot.store)
            _, metrics_key = await keys.create("prometheus", ["metrics:read"])
            _, api_key = await keys.create("call-router", ["availability:read"])
            url = sims.app_url + "/metrics"
            assert (await _get(session, url))[0] == 401
            assert (await _get(session, url, api_key))[0] == 403
            status, page = await _get(session, url, metrics_key)
            assert status == 200, page
        finally:
            await bot.stop()

    samples = _samples(page)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("rcstatus_presence_events_total") > 0
    assert value("rcstatus_presence_transitions_total") > 0
    assert value("rcstatus_status_writes_total", outcome="ok") >= 1
    assert value("rcstatus_commands_total", subcommand="lookup") == 1
    assert value("rcstatus_rate_limited_total", platform="ringcentral") == 1
    assert value("rcstatus_ringcentral_logins_total") == 1
    assert value("rcstatus_ringcentral_requests_total", group="heavy") >= 1
    assert value("rcstatus_status_budget_limit") == 50
    assert value("rcstatus_presence_intake_seconds_count") > 0
    assert value("rcstatus_ready") == 1
    assert value("rcstatus_leader") == 1  # alone on SQLite, it leads
    assert value("rcstatus_http_requests_total", route="/metrics", status="401") == 1
    assert value("rcstatus_http_requests_total", route="/metrics", status="403") == 1
    assert value("rcstatus_http_requests_total", route="/readyz", status="503") >= 1
