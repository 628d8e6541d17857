"""A promised "free now" DM arrives once through 429s, 5xx, a restart; a refused one is dropped."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.app import Bot
from bot.presence import Availability
from bot.sim.company import Person
from bot.store import schema
from tests.helpers import wait_until
from tests.integration.bot_harness import Sims, running_bot, simulators


async def notify(bot: Bot, sims: Sims, watcher: Person, target: Person) -> None:
    """The target is on a call and the watcher asks to be told when they are free."""
    sims.call(target, "connected")
    await wait_until(lambda: bot.availability(str(target.slack_id)) is Availability.ON_CALL)
    assert watcher.slack_id is not None
    outcome = await sims.slack.send_command(
        watcher.slack_id, "/rcstatus", f"notify <@{target.slack_id}>", wait=5.0, expect_responses=1
    )
    last = outcome["responses"][-1]
    assert "I'll DM you" in last.get("text", "") + json.dumps(last.get("blocks")), outcome


def dms(sims: Sims, person: Person) -> list[dict[str, Any]]:
    return sims.slack.messages(user=person.slack_id, kind="dm")


def internal_errors(sims: Sims) -> int:
    return int(sims.slack.stats()["errors"].get("chat.postMessage:internal_error", 0))


async def watch_states(bot: Bot, watcher: Person) -> list[str]:
    async with bot.store.engine.connect() as conn:
        rows = await conn.execute(
            schema.watches.select().where(schema.watches.c.watcher_id == watcher.slack_id)
        )
        return [row.state for row in rows]


async def outbox_attempts(bot: Bot) -> list[int]:
    async with bot.store.engine.connect() as conn:
        rows = await conn.execute(schema.dm_outbox.select())
        return [row.attempts for row in rows]


async def test_a_429_a_500_and_a_restart_still_deliver_the_free_dm_once(tmp_path: Path) -> None:
    database = tmp_path / "bot.db"
    async with simulators() as sims:
        watcher, target = sims.people()[0], sims.people()[1]
        async with running_bot(sims, database, FREE_DEBOUNCE_SECONDS="1") as bot:
            await notify(bot, sims, watcher, target)
            sims.slack.inject_fault("chat.postMessage", 429, count=1, retry_after=2)
            sims.slack.inject_fault("chat.postMessage", 500, count=1000)
            sims.call(target, "ended")
            await wait_until(
                lambda: internal_errors(sims) >= 1, timeout=20, message="the 429, then a 500"
            )
            # The 429 was waited out inside the one attempt (Retry-After), whose retry got the 500.
            assert sims.slack.stats()["rate_limited"]["chat.postMessage"] == 1
            assert await outbox_attempts(bot) == [1]
            assert dms(sims, watcher) == []
            assert await bot.store.pending_dm_count(bot.team_id) == 1
            assert await watch_states(bot, watcher) == ["sending"]  # not fired: not yet told
        sims.slack.inject_fault("chat.postMessage", 500, count=0)  # Slack recovers meanwhile
        async with running_bot(sims, database, FREE_DEBOUNCE_SECONDS="1") as bot:
            await wait_until(lambda: dms(sims, watcher), timeout=30, message="the free DM")
            await wait_until(
                _nothing_pending(bot), timeout=10, message="the outbox to record the DM as sent"
            )
            assert await watch_states(bot, watcher) == ["fired"]
            assert bot.stats().free_dms_sent == 1
        [dm] = dms(sims, watcher)  # exactly one, and nothing left that could send another
        assert dm["text"].startswith(f"✅ <@{target.slack_id}> is free now")
        assert "on the phone for" in dm["text"]


def _nothing_pending(bot: Bot) -> Any:
    async def check() -> bool:
        return await bot.store.pending_dm_count(bot.team_id) == 0

    return check


async def test_a_dm_slack_refuses_for_good_is_dropped_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with simulators() as sims:
        watcher, target = sims.people()[2], sims.people()[3]
        async with running_bot(sims, tmp_path / "bot.db", FREE_DEBOUNCE_SECONDS="1") as bot:
            await notify(bot, sims, watcher, target)
            sims.slack.inject_fault("chat.postMessage", 200, count=1, error="account_inactive")
            with caplog.at_level(logging.INFO, logger="bot.slack.outbox"):
                sims.call(target, "ended")
                await wait_until(
                    lambda: _dropped(caplog),
                    timeout=20,
                    message="the refusal to be logged",
                )
                await wait_until(_nothing_pending(bot), timeout=10, message="the row to go")
            assert await watch_states(bot, watcher) == ["expired"]
            assert sims.slack.stats()["calls"]["chat.postMessage"] == 1  # never tried again
        assert dms(sims, watcher) == []
        lines = [r.getMessage() for r in caplog.records if r.name == "bot.slack.outbox"]
        assert lines == [
            f"Slack refused a DM to {watcher.slack_id} for good (account_inactive); dropped"
        ]


def _dropped(caplog: pytest.LogCaptureFixture) -> bool:
    return any("refused a DM" in r.getMessage() for r in caplog.records)
