"""Burst benchmark: everyone starts a call at once; how soon is everyone shown "On a call"?

The whole bot, as `rcstatus-bot run` starts it, against both simulators with Slack's real limits
(50 `users.profile.set` a minute per workspace): 1,000 connected people, all free, all start a
call in the same instant. Each needs one write, so nothing can be faster than the workspace's
budget allows: people / writes a window x the window, after the call debounce. That floor is
the baseline; ours is reported as a ratio to it, with the absolute times and the 429s."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.common import (
    RESULTS_DIR,
    connect_everyone,
    fmt,
    free_port,
    joined,
    percentile,
    progress,
    wait_until,
    write_result,
)
from bot.app import Bot
from bot.cli import simulator_env
from bot.config import Settings
from bot.policy import DEFAULT_PREFERENCES, call_status
from bot.presence import Availability
from bot.roster import PersonChange
from bot.sim.company import build_company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral import RingCentralSimulator
from bot.sim.slack import SlackSimulator

PROFILE_SET: Final = "users.profile.set"
SETUP_TIMEOUT: Final = 300.0
COMPANY_MARGIN: Final = 1.3
"""The company is this much larger than the burst: some of its people are on one side only,
disabled, or start busy, and the burst takes only people who start free."""
POLL: Final = 0.02


@dataclass(slots=True)
class OnCallClock:
    """A consumer under the hub, after the bot's own: when each person's call reached the
    status writer (wall seconds, the clock the simulators log by)."""

    since: float = math.inf
    taken_in: dict[str, float] = field(default_factory=dict)

    async def on_person_change(self, change: PersonChange) -> None:
        now = time.time()
        if now >= self.since and change.new is Availability.ON_CALL:
            self.taken_in.setdefault(change.user_id, now)

    async def on_resync(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Sims:
    rc: RingCentralSimulator
    slack: SlackSimulator
    env: dict[str, str]


@contextlib.asynccontextmanager
async def simulators(company_size: int, *, scale: float, seed: int) -> AsyncIterator[Sims]:
    """Both simulators in this process, with their defaults: Slack's documented limits."""
    company = build_company(company_size, seed=seed)
    time_scale = TimeScale(scale)
    app_url = f"http://127.0.0.1:{free_port()}"
    rc = RingCentralSimulator(company, time_scale=time_scale)
    slack = SlackSimulator(company, time_scale=time_scale, app_url=app_url)
    async with rc, slack:
        yield Sims(rc, slack, simulator_env(rc, slack, app_url=app_url, time_scale=time_scale))


def free_people(bot: Bot, sims: Sims, links: list[tuple[str, str]], wanted: int) -> list[str]:
    """Linked people the bot knows as available whose profile shows no status: each call of
    theirs needs exactly one write."""
    chosen = []
    for user_id, _extension in links:
        if bot.availability(user_id) is not Availability.AVAILABLE:
            continue
        if sims.slack.user(user_id)["status_text"]:
            continue
        chosen.append(user_id)
        if len(chosen) == wanted:
            return chosen
    raise RuntimeError(f"only {len(chosen)} free linked people; the burst needs {wanted}")


async def run(people: int = 1000, scale: float = 60.0, seed: int = 7) -> dict[str, Any]:
    size = math.ceil(people * COMPANY_MARGIN)
    progress(f"burst: simulators with a company of {size:,}, time scale {scale:g}")
    clock = OnCallClock()
    async with simulators(size, scale=scale, seed=seed) as sims:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**sims.env, "DATABASE_URL": f"sqlite+aiosqlite:///{Path(tmp) / 'bot.db'}"}
            settings = Settings.from_env(env, env_file=None)
            bot = await Bot.create(settings, consumers=[clock])
            try:
                await bot.start()
                await asyncio.wait_for(bot.wait_ready(), SETUP_TIMEOUT)
                return await burst(bot, sims, clock, people)
            finally:
                await bot.stop()


async def burst(bot: Bot, sims: Sims, clock: OnCallClock, people: int) -> dict[str, Any]:
    settings = bot.settings
    links = [(link.user_id, link.extension_id) for link in await bot.store.links(bot.team_id)]
    extension_of = dict(links)
    chosen = free_people(bot, sims, links, people)
    tokens = {user_id: sims.slack.grant_user_token(user_id) for user_id in chosen}
    await connect_everyone(bot, sims.slack.app_id, tokens, label="burst")
    await wait_until(lambda: bot.pending_writes() == 0, within=SETUP_TIMEOUT, what="setup writes")
    window = settings.rate_window_seconds
    # Free people need no write, but a window with nothing sent leaves the whole budget ready.
    await asyncio.sleep(2 * window)
    stats_before, scheduler_before = sims.slack.stats(), bot.stats().scheduler
    call = call_status(DEFAULT_PREFERENCES)

    def shows_call(user_id: str) -> bool:
        profile = sims.slack.user(user_id)
        return (profile["status_text"], profile["status_emoji"]) == (call.text, call.emoji)

    progress(f"burst: {people:,} people start a call at once")
    started = clock.since = time.time()
    for user_id in chosen:
        sims.rc.call(int(extension_of[user_id]), "connected")
    issued = time.time() - started
    floor = people / settings.slack_profile_writes_per_minute * window
    debounce = settings.call_debounce_seconds
    bound = floor + debounce
    waiting = set(chosen)

    def everyone_shown() -> bool:
        waiting.difference_update([user_id for user_id in waiting if shows_call(user_id)])
        return not waiting

    await wait_until(
        everyone_shown,
        within=4 * bound + 60.0,
        interval=POLL,
        what=f"{people:,} people shown 'On a call'",
    )
    polled = time.time() - started
    scheduler = bot.stats().scheduler
    stats_after = sims.slack.stats()
    members = set(chosen)
    writes = [w for w in sims.slack.profile_writes(since=started) if w["user"] in members]
    first_shown: dict[str, float] = {}
    for write in sorted(writes, key=lambda w: float(w["at"])):
        if (write["text"], write["emoji"]) == (call.text, call.emoji):
            first_shown.setdefault(str(write["user"]), float(write["at"]) - started)
    shown_at = sorted(first_shown.values())
    taken_in = sorted(at - started for at in clock.taken_in.values())
    all_shown = shown_at[-1]

    def grew(kind: str, method: str | None = None) -> int:
        if method is None:
            return int(sum(stats_after[kind].values()) - sum(stats_before[kind].values()))
        return int(stats_after[kind].get(method, 0)) - int(stats_before[kind].get(method, 0))

    sustained = (len(shown_at) - 1) / (shown_at[-1] - shown_at[0]) if len(shown_at) > 1 else None
    return {
        "people": people,
        "time_scale": settings.time_scale,
        "processes": (
            "the bot and both simulators in one process and event loop, as the integration "
            "test that used to time this had them; the pace is Slack's budget, not the CPU"
        ),
        "workload": (
            f"{people:,} connected people, each linked, free and with an empty status, all "
            "start a call (CallConnected, no ring) in one loop over the RingCentral simulator; "
            "nobody's call ends during the measurement"
        ),
        "limits": {
            "SLACK_PROFILE_WRITES_PER_MINUTE": settings.slack_profile_writes_per_minute,
            "SLACK_WRITES_PER_PROFILE_PER_MINUTE": settings.slack_writes_per_profile_per_minute,
            "CALL_DEBOUNCE_SECONDS": debounce,
            "TIME_SCALE": settings.time_scale,
            "rate_window_seconds": window,
            "slack_simulator": "its defaults: users.profile.set Tier 3, 50 a minute, 10 a "
            "minute per profile",
        },
        "bound": {
            "seconds": round(bound, 3),
            "writes_seconds": round(floor, 3),
            "call_debounce_seconds": debounce,
            "formula": "people / SLACK_PROFILE_WRITES_PER_MINUTE x rate window + call debounce",
        },
        "issued_seconds": round(issued, 3),
        "all_taken_in_seconds": round(taken_in[-1], 3) if taken_in else None,
        "taken_in": len(taken_in),
        "first_shown_seconds": round(shown_at[0], 3),
        "median_shown_seconds": round(percentile(shown_at, 0.5), 3),
        "all_shown_seconds": round(all_shown, 3),
        "all_shown_polled_seconds": round(polled, 3),
        "ratio_to_bound": round(all_shown / bound, 3),
        "writes_after_debounce_ratio_to_floor": round((all_shown - debounce) / floor, 3),
        "shown_per_second": round(sustained, 1) if sustained is not None else None,
        "budget_per_second": round(settings.slack_profile_writes_per_minute / window, 1),
        "slack_profile_set_calls": grew("calls", PROFILE_SET),
        "slack_profile_set_429s": grew("rate_limited", PROFILE_SET),
        "slack_429s_all_methods": grew("rate_limited"),
        "bot_scheduler": {
            "writes": scheduler.writes - scheduler_before.writes,
            "shows": scheduler.shows - scheduler_before.shows,
            "rate_limited": scheduler.rate_limited - scheduler_before.rate_limited,
            "retries": scheduler.retries - scheduler_before.retries,
            "skipped": scheduler.skipped - scheduler_before.skipped,
        },
        "measured": (
            "seconds from just before the first call was placed to the Slack simulator "
            "logging the first users.profile.set that showed each person 'On a call' (both "
            "on this process's wall clock); all_shown_seconds is the last of them. "
            "all_taken_in_seconds is when the status writer had the last person's call (a "
            "consumer under the hub, told after it)"
        ),
    }


def summarise(result: dict[str, Any]) -> str:
    bound = result["bound"]
    limited = result["slack_profile_set_429s"]
    return joined(
        [
            f"{result['people']:,} people start a call at once at time scale "
            f"{result['time_scale']:g}: all shown in {fmt(result['all_shown_seconds'])} s vs "
            f"{fmt(bound['seconds'])} s the limits allow ({fmt(bound['writes_seconds'])} s of "
            f"writes + {bound['call_debounce_seconds']:g} s debounce), "
            f"x{result['ratio_to_bound']:.2f}",
            f"first shown {fmt(result['first_shown_seconds'], 2)} s, median "
            f"{fmt(result['median_shown_seconds'])} s, all taken in "
            f"{fmt(result['all_taken_in_seconds'] or math.nan, 2)} s",
            f"{fmt(result['shown_per_second'] or math.nan)} shown/s of a "
            f"{result['budget_per_second']:g}/s budget, "
            f"{result['slack_profile_set_calls']:,} writes, "
            + (f"{limited} 429s (OVER BUDGET)" if limited else "0 429s"),
        ]
    )


def main(argv: list[str] | None = None, *, directory: Path = RESULTS_DIR) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.burst", description=__doc__)
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=60.0, help="simulators' time scale")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.people, args.scale, args.seed))
    summary = summarise(result)
    write_result("burst", result, summary=summary, directory=directory)
    progress(f"burst: {summary}")
    return result


if __name__ == "__main__":
    main()
