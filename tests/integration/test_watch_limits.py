"""The watch limit holds under concurrency, in the store and through /rcstatus notify."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.presence import Availability
from bot.slack.command_text import MAX_ACTIVE_WATCHES
from bot.store import Store
from tests.helpers import wait_until
from tests.integration.bot_harness import running_bot, simulators
from tests.store_fixtures import database_url

__all__ = ["database_url"]  # the fixture, imported so pytest finds it here

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
REQUESTS = 25


async def test_concurrent_watches_never_pass_the_limit(database_url: str) -> None:
    async with Store(database_url, clock=lambda: T0) as store:
        until = T0 + timedelta(hours=1)
        added = await asyncio.gather(
            *(
                store.add_watch("T1", "W1", f"U{n}", until, limit=MAX_ACTIVE_WATCHES)
                for n in range(REQUESTS)
            )
        )
        assert sum(watch is not None for watch in added) == MAX_ACTIVE_WATCHES
        assert await store.active_watch_count("T1", "W1") == MAX_ACTIVE_WATCHES

        # At the limit, a watch already held can still be extended, and no new one is added.
        held = next(watch for watch in added if watch is not None)
        extended = await store.add_watch(
            "T1", "W1", held.target_id, until + timedelta(hours=1), limit=MAX_ACTIVE_WATCHES
        )
        assert extended is not None
        assert (extended.id, extended.expires_at) == (held.id, until + timedelta(hours=1))
        refused = next(f"U{n}" for n, watch in enumerate(added) if watch is None)
        assert await store.add_watch("T1", "W1", refused, until, limit=MAX_ACTIVE_WATCHES) is None
        # The limit is each watcher's own.
        assert (
            await store.add_watch("T1", "W2", refused, until, limit=MAX_ACTIVE_WATCHES) is not None
        )
        assert await store.active_watch_count("T1", "W1") == MAX_ACTIVE_WATCHES


async def test_concurrent_notify_commands_leave_at_most_the_limit(
    database_url: str, tmp_path: Path
) -> None:
    async with simulators(users=REQUESTS + 8) as sims:
        people = sims.people()
        watcher, targets = people[0], people[1 : REQUESTS + 1]
        assert len(targets) == REQUESTS
        async with running_bot(sims, tmp_path / "unused.db", DATABASE_URL=database_url) as bot:
            for target in targets:
                sims.call(target, "connected")
            await wait_until(
                lambda: all(
                    bot.availability(str(t.slack_id)) is Availability.ON_CALL for t in targets
                ),
                timeout=20,
                message="every target on a call",
            )
            assert watcher.slack_id is not None
            outcomes = await asyncio.gather(
                *(
                    sims.slack.send_command(
                        watcher.slack_id,
                        "/rcstatus",
                        f"notify <@{target.slack_id}>",
                        wait=15.0,
                        expect_responses=1,
                    )
                    for target in targets
                )
            )
            replies = [
                o["responses"][-1].get("text", "") + json.dumps(o["responses"][-1].get("blocks"))
                for o in outcomes
            ]
            promised = [r for r in replies if "DM you" in r]
            refused = [r for r in replies if f"already watching {MAX_ACTIVE_WATCHES} people" in r]
            expected = (MAX_ACTIVE_WATCHES, REQUESTS - MAX_ACTIVE_WATCHES)
            assert (len(promised), len(refused)) == expected, replies
            active = await bot.store.watches_for(bot.team_id, watcher.slack_id)
            assert len([w for w in active if w.state == "active"]) == MAX_ACTIVE_WATCHES
