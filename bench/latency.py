"""Latency benchmark: RingCentral presence event to Slack status write, through the whole bot.

Two configurations, each with its own simulators and bot: "lifted" lifts Slack's write budget and
the call debounce so that every event has a write to time; "production" keeps Slack's limits and
the bot's defaults, where what matters is whether the bot keeps up with taking events in."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import tempfile
import time
import traceback
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import psutil  # type: ignore[import-untyped]

from bench.common import (
    RESULTS_DIR,
    TOKEN_BATCH,
    Child,
    child,
    connect_everyone,
    fmt,
    free_port,
    joined,
    percentile,
    progress,
    receive,
    serve_child,
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
from bot.slack.scheduler import SchedulerStats

CONFIGS: Final = ("lifted", "production")
LIFTED: Final = 1_000_000
"""Writes a minute standing in for "no limit" on both sides of the Slack budget."""
PROFILE_SET_TIER: Final = 3
"""The simulator's tier for users.profile.set (Slack documents it as Tier 3)."""
PROFILE_SET: Final = "users.profile.set"
PRODUCTION_CALL_SECONDS: Final = 3.0
"""Real seconds per call in the production configuration: longer than the default call
debounce, which the time scale does not shorten, or no call would ever be written."""
DEFAULT_CALL_DEBOUNCE: Final = 2.0
GAP_HOLD_AT_REAL_TIME: Final = 2.0
"""bot/app.py gives the scheduler `gap_hold=settings.service_seconds(2.0)` (2 s / TIME_SCALE)."""
SETUP_TIMEOUT: Final = 300.0
POLL: Final = 0.25
SCHEDULER_COUNTERS: Final = (
    "submitted", "writes", "shows", "releases", "extends", "rate_limited", "retries",
    "dropped_unwritten", "expired_by_ttl", "bridged_gaps", "skipped",
)  # fmt: skip
"""`writes` counts every write the scheduler started; `skipped` those the status writer, deciding
again when their turn came, found no longer wanted and never sent to Slack."""


@dataclass(frozen=True, slots=True)
class SimConfig:
    people: int
    seed: int
    scale: float
    app_port: int
    event_log: int
    lifted: bool


@dataclass(frozen=True, slots=True)
class PhasePlan:
    rate: float
    duration: float
    call_seconds: float
    deadline: float
    await_writes: bool
    """Lifted: every event gets a write, so the phase waits for them. Production: most events
    are coalesced by design, so the parent waits for the bot to take them in instead."""


# ------------------------------------------------------------------ the child: simulators, load


def simulators_main(conn: Connection, config: SimConfig) -> None:
    """The child process: both simulators and the load generator, driven over `conn`."""
    serve_child(conn, _serve, config)


async def _serve(conn: Connection, config: SimConfig) -> None:
    company = build_company(config.people, seed=config.seed)
    scale = TimeScale(config.scale)
    app_url = f"http://127.0.0.1:{config.app_port}"
    rc = RingCentralSimulator(company, time_scale=scale, event_log_size=config.event_log)
    if config.lifted:
        slack = SlackSimulator(
            company,
            time_scale=scale,
            app_url=app_url,
            tier_limits={PROFILE_SET_TIER: LIFTED},
            profile_writes_per_profile=LIFTED,
        )
    else:
        # The simulator's defaults are Slack's documented limits.
        slack = SlackSimulator(company, time_scale=scale, app_url=app_url)
    async with rc, slack:
        env = simulator_env(rc, slack, app_url=app_url, time_scale=scale)
        conn.send(("ready", {"env": env, "app_id": slack.app_id}))
        load = Load(rc, slack)
        while True:
            message = await receive(conn, within=24 * 3600.0)
            try:
                if message[0] == "stop":
                    return
                if message[0] == "connect":
                    conn.send(("tokens", load.connect(message[1])))
                elif message[0] == "phase":
                    conn.send(("sent", await load.drive_phase(message[1])))
                elif message[0] == "result":
                    conn.send(("result", await load.phase_result()))
                else:
                    raise ValueError(f"unknown command {message[0]!r}")
            except Exception:
                conn.send(("error", traceback.format_exc()))


@dataclass(slots=True)
class Matched:
    start: list[float] = field(default_factory=list)
    end: list[float] = field(default_factory=list)
    missing_start: int = 0
    missing_end: int = 0
    last_answer_at: float = 0.0

    @property
    def missing(self) -> int:
        return self.missing_start + self.missing_end


def match_writes(
    events: Sequence[tuple[str, float, bool]],
    writes: Sequence[tuple[str, float, bool]],
) -> Matched:
    """Event -> write latency per person, both given as (user, unix time, is a call).

    A call's start is answered by the first later write showing the call status, its end by the
    first later write showing anything else; each write answers at most one event, and an event
    whose answer only comes after that person's next event of the same kind was never answered
    (its write was coalesced away)."""
    by_user: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for user, at, is_call in sorted(writes, key=lambda w: w[1]):
        by_user[user].append((at, is_call))
    per_user: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for user, at, is_call in sorted(events, key=lambda e: e[1]):
        per_user[user].append((at, is_call))
    matched = Matched()
    for user, timeline in per_user.items():
        answers = by_user.get(user, [])
        cursor = 0
        for index, (at, is_call) in enumerate(timeline):
            later = [t for t, kind in timeline[index + 1 :] if kind == is_call]
            before = later[0] if later else float("inf")
            found = None
            for position in range(cursor, len(answers)):
                written_at, shows_call = answers[position]
                if written_at >= before:
                    break
                if written_at >= at and shows_call == is_call:
                    found = position
                    break
            if found is None:
                if is_call:
                    matched.missing_start += 1
                else:
                    matched.missing_end += 1
                continue
            cursor = found + 1
            answered_at = answers[found][0]
            (matched.start if is_call else matched.end).append(answered_at - at)
            matched.last_answer_at = max(matched.last_answer_at, answered_at)
    return matched


@dataclass(frozen=True, slots=True)
class Driven:
    """A phase whose events have all been sent, until its result is asked for."""

    plan: PhasePlan
    wall_started: float
    figures: dict[str, Any]
    cpu_seconds: float
    slack_before: dict[str, Any]


class Load:
    """Places and ends calls at a steady event rate and times the writes they cause."""

    def __init__(self, rc: RingCentralSimulator, slack: SlackSimulator) -> None:
        self._rc = rc
        self._slack = slack
        self._call = call_status(DEFAULT_PREFERENCES)
        self._user_of: dict[int, str] = {}
        self._idle: deque[int] = deque()
        self._cursor = 0
        self._driven: Driven | None = None

    def connect(self, links: list[tuple[str, str]]) -> dict[str, str]:
        """Give every linked person a user token; drive those who start free with no status."""
        tokens = {user_id: self._slack.grant_user_token(user_id) for user_id, _ in links}
        for user_id, extension in links:
            extension_id = int(extension)
            presence = self._rc.presence(extension_id)
            if (
                presence.get("presenceStatus") == "Available"
                and presence.get("telephonyStatus") == "NoCall"
                and presence.get("dndStatus", "TakeAllCalls") == "TakeAllCalls"
                and not self._slack.user(user_id)["status_text"]
            ):
                self._user_of[extension_id] = user_id
                self._idle.append(extension_id)
        return tokens

    async def drive_phase(self, plan: PhasePlan) -> int:
        """Send the phase's events; how many were sent."""
        process = psutil.Process()
        events_before = self._rc.events(after=self._cursor)
        if events_before:
            self._cursor = int(events_before[-1]["id"])
        wall_started = time.time()
        slack_before = self._slack.stats()
        cpu_before = process.cpu_times()
        figures = await self._drive(plan)
        cpu_after = process.cpu_times()
        cpu = sum(cpu_after[:2]) - sum(cpu_before[:2])
        self._driven = Driven(plan, wall_started, figures, cpu, slack_before)
        return int(figures["events"])

    async def phase_result(self) -> dict[str, Any]:
        driven, self._driven = self._driven, None
        if driven is None:
            raise RuntimeError("asked for a phase's result before driving one")
        plan = driven.plan
        deadline = time.monotonic() + plan.deadline
        while True:
            events = self._call_events()
            matched = self._match(events, driven.wall_started)
            if not matched.missing or not plan.await_writes or time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL)
        samples = matched.start + matched.end
        # Every call of the phase has ended by now: "On a call" still shown is a stuck status.
        stuck = sum(
            1
            for user in {user for user, _, _ in events}
            if self._shows_call(self._slack.user(user), prefix="status_")
        )
        first_event = min((at for _, at, _ in events), default=driven.wall_started)
        span = matched.last_answer_at - first_event if samples else 0.0
        return {
            **driven.figures,
            "events_logged": len(events),
            "writes_matched": len(samples),
            "missing": matched.missing,
            "missing_start": matched.missing_start,
            "missing_end": matched.missing_end,
            "still_showing_call_after_phase": stuck,
            # What the bot sustained: below the target rate, it fell behind.
            "written_per_second_until_last_write": round(len(samples) / span, 1) if span else None,
            "last_write_after_last_event_seconds": round(
                matched.last_answer_at - max(at for _, at, _ in events), 2
            )
            if samples
            else None,
            **_percentiles("", samples),
            **_percentiles("start_", matched.start),
            **_percentiles("end_", matched.end),
            **self._slack_counts(driven.slack_before),
            "simulators_cpu_percent_of_one_core": round(
                100 * driven.cpu_seconds / driven.figures["sending_seconds"], 1
            ),
            "call_events": events,
        }

    def _slack_counts(self, before: dict[str, Any]) -> dict[str, Any]:
        """What the Slack simulator answered since the phase began: its word, not the bot's."""
        after = self._slack.stats()

        def grew(kind: str, method: str) -> int:
            return int(after[kind].get(method, 0)) - int(before[kind].get(method, 0))

        def errors(stats: dict[str, Any]) -> int:
            return sum(n for key, n in stats["errors"].items() if key.startswith(PROFILE_SET + ":"))

        calls, limited = grew("calls", PROFILE_SET), grew("rate_limited", PROFILE_SET)
        failed = errors(after) - errors(before)
        return {
            "slack_profile_set_calls": calls,
            "slack_profile_set_written": calls - limited - failed,
            "slack_profile_set_429s": limited,
            "slack_profile_set_errors": failed,
            "slack_429s_other_methods": {
                method: grew("rate_limited", method)
                for method in after["rate_limited"]
                if method != PROFILE_SET and grew("rate_limited", method)
            },
        }

    async def _drive(self, plan: PhasePlan) -> dict[str, Any]:
        """Event slots every 1/rate s: end the oldest call once it has lasted `call_seconds`,
        else start one. Once `duration` is over, the calls still up end at the same rate."""
        if not self._idle:
            raise RuntimeError("nobody is free to place a call: no one to measure")
        slots = max(1, round(plan.rate * plan.duration))
        active: deque[tuple[int, str, float]] = deque()
        starts = ends = cut_short = 0
        began = time.monotonic()
        index = 0
        while index < slots or active:
            delay = began + index / plan.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif index % 25 == 0:
                await asyncio.sleep(0)  # behind schedule: the simulators must still serve
            now = time.monotonic()
            due = bool(active) and now - active[0][2] >= plan.call_seconds
            if active and (due or index >= slots or not self._idle):
                extension_id, call_id, _ = active.popleft()
                self._rc.call(extension_id, "ended", call_id=call_id)
                self._idle.append(extension_id)
                ends += 1
                if not due and index < slots:
                    cut_short += 1
            else:
                extension_id = self._idle.popleft()
                active.append((extension_id, self._rc.call(extension_id, "connected"), now))
                starts += 1
            index += 1
        took = time.monotonic() - began
        events = starts + ends
        return {
            "target_rate_per_second": plan.rate,
            "achieved_rate_per_second": round((events - 1) / took, 1) if took > 0 else None,
            "sending_seconds": round(took, 2),
            "events": events,
            "call_starts": starts,
            "call_ends": ends,
            "calls_ended_early_no_idle_person": cut_short,
        }

    def _call_events(self) -> list[tuple[str, float, bool]]:
        picked = []
        for event in self._rc.events(after=self._cursor):
            user = self._user_of.get(int(event["extension_id"]))
            state = event["fields"].get("telephonyStatus")
            if user is not None and state is not None:
                picked.append((user, float(event["time"]), state != "NoCall"))
        return picked

    def _match(self, events: list[tuple[str, float, bool]], since: float) -> Matched:
        users = {user for user, _, _ in events}
        writes = [
            (str(w["user"]), float(w["at"]), self._shows_call(w, prefix=""))
            for w in self._slack.profile_writes(since=since)
            if w["user"] in users
        ]
        return match_writes(events, writes)

    def _shows_call(self, status: dict[str, Any], *, prefix: str) -> bool:
        shown = (status[f"{prefix}text"], status[f"{prefix}emoji"])
        return shown == (self._call.text, self._call.emoji)


def _percentiles(prefix: str, samples: list[float]) -> dict[str, float | None]:
    def ms(value: float) -> float | None:
        return None if math.isnan(value) else round(value * 1000, 1)  # NaN: no samples

    return {
        f"{prefix}p50_ms": ms(percentile(samples, 0.50)),
        f"{prefix}p95_ms": ms(percentile(samples, 0.95)),
        f"{prefix}p99_ms": ms(percentile(samples, 0.99)),
        f"{prefix}max_ms": ms(max(samples, default=float("nan"))),
    }


# ------------------------------------------------------------------ the parent: the bot


@contextlib.contextmanager
def child_process(config: SimConfig) -> Iterator[Child]:
    with child(simulators_main, config, "latency-simulators") as process:
        yield process


class TakenIn:
    """When the bot's status writer had each person's change, to split each latency into taking
    the event in and writing it: a consumer under the hub, given to `Bot.create` after the
    bot's own, so the hub tells it each change once the status writer has taken it in."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, float, bool]] = []

    async def on_person_change(self, change: PersonChange) -> None:
        if change.new is not None:  # an unlinking says nothing about the phone
            self.seen.append((change.user_id, time.time(), change.new is Availability.ON_CALL))

    async def on_resync(self) -> None:
        pass

    def since(self, wall: float) -> list[tuple[str, float, bool]]:
        return [entry for entry in self.seen if entry[1] >= wall]


class Sampler:
    """The bot process's peak RSS while a phase runs."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.peak = 0

    async def run(self) -> None:
        while True:
            self.peak = max(self.peak, self._process.memory_info().rss)
            await asyncio.sleep(POLL)


async def measure_phase(
    bot: Bot, child: Child, taken_in: TakenIn, plan: PhasePlan, name: str
) -> dict[str, Any]:
    process = psutil.Process()
    counters_before = _counters(bot.stats().scheduler)
    transitions_before = _told(bot)
    sampler = Sampler()
    sampling = asyncio.create_task(sampler.run())
    all_in_after: float | None = None
    try:
        wall_started = time.time()
        cpu_before, started = process.cpu_times(), time.monotonic()
        child.send(("phase", plan))
        sent: int = await child.expect("sent", within=plan.duration * 4 + plan.call_seconds + 120.0)
        cpu_after, sent_at = process.cpu_times(), time.monotonic()
        rss = process.memory_info().rss
        transitions_at_sent = _told(bot) - transitions_before
        backlog_at_sent = bot.pending_writes()
        if not plan.await_writes:
            all_in_after = await settle(bot, transitions_before + sent, within=plan.deadline)
        child.send(("result",))
        result: dict[str, Any] = await child.expect("result", within=plan.deadline + 60.0)
        backlog_at_end = bot.pending_writes()
    finally:
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
    counters = _counters(bot.stats().scheduler)
    cpu = sum(cpu_after[:2]) - sum(cpu_before[:2])
    events: list[tuple[str, float, bool]] = result.pop("call_events")
    # Both processes read the same system clock, so the child's event times and ours compare.
    stage = match_writes(events, taken_in.since(wall_started))
    result.update(
        {
            **_percentiles("taken_in_", stage.start + stage.end),
            "bot_cpu_percent_of_one_core": round(100 * cpu / (sent_at - started), 1),
            "bot_rss_mib": round(rss / 2**20, 1),
            "bot_rss_peak_mib": round(max(sampler.peak, rss) / 2**20, 1),
            "bot_events_not_taken_in_when_sending_stopped": result["events"] - transitions_at_sent,
            "bot_events_not_taken_in_at_end": stage.missing,
            "bot_writes_queued_when_sending_stopped": backlog_at_sent,
            "bot_writes_queued_at_end": backlog_at_end,
            "bot_transitions": _told(bot) - transitions_before,
            "bot_scheduler": {k: counters[k] - counters_before[k] for k in SCHEDULER_COUNTERS},
        }
    )
    if plan.await_writes:
        progress(
            f"latency: {name}: {result['writes_matched']}/{result['events']} events written, "
            f"p50/p95/p99 {result['p50_ms']}/{result['p95_ms']}/{result['p99_ms']} ms, "
            f"missing {result['missing']}, bot CPU {result['bot_cpu_percent_of_one_core']}%"
        )
    else:
        result["bot_all_taken_in_after_sending_stopped_seconds"] = (
            None if all_in_after is None else round(all_in_after, 2)
        )
        progress(
            f"latency: {name}: {result['events'] - stage.missing}/{result['events']} events "
            f"taken in, p50/p95/p99 {_triple(result, 'taken_in_')} ms, "
            f"{result['slack_profile_set_written']} writes, "
            f"{result['slack_profile_set_429s']} 429s, "
            f"bot CPU {result['bot_cpu_percent_of_one_core']}%"
        )
    refused, counted = result["slack_profile_set_429s"], result["bot_scheduler"]["rate_limited"]
    if refused or counted:
        progress(
            f"latency: WARNING: {name}: Slack answered {refused} users.profile.set calls with "
            f"429 (the bot counted {counted}): the scheduler did not keep to the budget"
        )
    return result


async def settle(bot: Bot, transitions: int, *, within: float) -> float | None:
    """Seconds until the bot had taken in every event sent (None if not within `within`), then
    wait, within the same time, until it has sent or dropped every write they caused."""
    began = time.monotonic()
    try:
        await wait_until(
            lambda: _told(bot) >= transitions,
            within=within,
            what="the bot to take every event in",
        )
    except TimeoutError:
        return None
    all_in = time.monotonic() - began
    # Reported as bot_writes_queued_at_end if the queue does not empty in time.
    with contextlib.suppress(TimeoutError):
        await wait_until(
            lambda: bot.pending_writes() == 0,
            within=max(0.0, began + within - time.monotonic()),
            what="the bot's queued writes",
        )
    return all_in


def _told(bot: Bot) -> int:
    """Changes the hub has told the bot's consumers (the status writer first): for people linked
    to an extension, each availability change, as the writer counted them before the hub."""
    return bot.stats().coordinator.published


def _counters(stats: SchedulerStats) -> dict[str, int]:
    return {name: int(getattr(stats, name)) for name in SCHEDULER_COUNTERS}


def bot_env(env: dict[str, str], database: Path, *, lifted: bool) -> dict[str, str]:
    base = {**env, "DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
    if not lifted:
        return base
    return {
        **base,
        "CALL_DEBOUNCE_SECONDS": "0",
        "SLACK_PROFILE_WRITES_PER_MINUTE": str(LIFTED),
        "SLACK_WRITES_PER_PROFILE_PER_MINUTE": str(LIFTED),
    }


async def run(
    people: int = 10_000,
    rates: tuple[float, ...] = (50.0, 500.0),
    baseline_rate: float = 5.0,
    duration: float = 10.0,
    scale: float = 60.0,
    call_seconds: float = 1.0,
    deadline: float = 30.0,
    seed: int = 7,
    configs: Sequence[str] = CONFIGS,
    production_call_seconds: float = PRODUCTION_CALL_SECONDS,
) -> dict[str, Any]:
    """The bot runs here exactly as `rcstatus-bot run` runs it; both simulators and the load
    generator run in a spawned child, so this process's CPU and RSS are the bot's alone. Each
    configuration gets a fresh child and a fresh bot, so neither inherits the other's state."""
    result: dict[str, Any] = {
        "people": people,
        "configs": list(configs),
        "processes": (
            "per configuration, the bot runs alone in the measuring process (bot_* figures: "
            "its CPU over the sending window and its RSS); both simulators and the load "
            "generator run in a spawned child (simulators_cpu_percent_of_one_core); the "
            f"machine has {psutil.cpu_count()} CPUs for both"
        ),
        "setup": (
            "user tokens are stored with the rows the OAuth flow's installation store writes, "
            f"{TOKEN_BATCH} people to a transaction, then the writer is told each person "
            "connected, as the OAuth callback does"
        ),
    }
    for name in configs:
        lifted = name == "lifted"
        result[name] = await run_config(
            name,
            people=people,
            seed=seed,
            scale=scale,
            rates=rates,
            baseline_rate=baseline_rate,
            duration=duration,
            call_seconds=call_seconds if lifted else production_call_seconds,
            deadline=deadline,
        )
    return result


async def run_config(
    name: str,
    *,
    people: int,
    seed: int,
    scale: float,
    rates: tuple[float, ...],
    baseline_rate: float,
    duration: float,
    call_seconds: float,
    deadline: float,
) -> dict[str, Any]:
    lifted = name == "lifted"
    busiest = max((baseline_rate, *rates)) * (duration + call_seconds)
    event_log = max(10_000, int(busiest * 2))
    config = SimConfig(people, seed, scale, free_port(), event_log, lifted)
    progress(f"latency: {name}: starting the simulators' process with {config.people:,} people")
    setup_started = time.monotonic()
    with child_process(config) as child, tempfile.TemporaryDirectory() as tmp:
        ready = await child.expect("ready", within=SETUP_TIMEOUT)
        env = bot_env(ready["env"], Path(tmp) / "bot.db", lifted=lifted)
        settings = Settings.from_env(env, env_file=None)
        taken_in = TakenIn()
        bot = await Bot.create(settings, consumers=[taken_in])
        try:
            progress(f"latency: {name}: starting the bot")
            await bot.start()
            await asyncio.wait_for(bot.wait_ready(), SETUP_TIMEOUT)
            started_seconds = time.monotonic() - setup_started
            progress(f"latency: {name}: the bot is up after {started_seconds:.0f} s")
            links = [
                (link.user_id, link.extension_id) for link in await bot.store.links(bot.team_id)
            ]
            child.send(("connect", links))
            tokens: dict[str, str] = await child.expect("tokens", within=SETUP_TIMEOUT)
            await connect_everyone(bot, ready["app_id"], tokens, label="latency")
            await wait_until(
                lambda: bot.pending_writes() == 0,
                within=SETUP_TIMEOUT,
                what="the statuses of people already busy at start",
            )
            setup_seconds = time.monotonic() - setup_started
            progress(f"latency: {name}: {len(tokens):,} people connected in {setup_seconds:.0f} s")
            phases = []
            for rate in (baseline_rate, *rates):
                progress(f"latency: {name}: {rate:g} events/s for {duration:g} s")
                plan = PhasePlan(rate, duration, call_seconds, deadline, await_writes=lifted)
                phases.append(await measure_phase(bot, child, taken_in, plan, f"{name} {rate:g}/s"))
                try:
                    await wait_until(
                        lambda: bot.pending_writes() == 0,
                        within=deadline,
                        what="the bot's queued writes",
                    )
                except TimeoutError:
                    # Reported as bot_writes_queued_at_end; the next phase starts regardless.
                    progress(f"latency: {bot.pending_writes()} writes still queued")
            monitored = bot.stats().extensions_known
        finally:
            await bot.stop()
    baseline, loads = phases[0], phases[1:]
    common = {
        "people_connected": len(tokens),
        "presences_monitored": monitored,
        "setup_seconds": round(setup_seconds, 1),
        "bot_up_after_seconds": round(started_seconds, 1),
    }
    if not lifted:
        return {
            **common,
            "measured": PRODUCTION_MEASURED,
            "workload": _workload(call_seconds, config.scale)
            + (
                f". Calls last {call_seconds:g} s, longer than in the lifted configuration: the "
                f"default call debounce ({settings.call_debounce_seconds:g} s, not time-scaled) "
                "keeps every shorter call from ever being written, and the write path would "
                "never spend Slack's budget"
            ),
            "conditions": production_conditions(settings, config.scale),
            "baseline": baseline,
            "loads": loads,
            "ratio_taken_in_p95": _ratios(loads, baseline, "taken_in_p95_ms"),
        }
    return {
        **common,
        "missing_means": (
            "events with no matching write within the deadline. A call whose end the bot took "
            "in before it had written the call's start is, by design, never written at all "
            "(both its events count); an end whose write never came while the start's did "
            "leaves the status shown: still_showing_call_after_phase counts those people"
        ),
        "measured": (
            "wall-clock time from the RingCentral simulator logging a presence change (a call "
            "connected, or ended) to the Slack simulator logging the users.profile.set that "
            "showed it (the first write showing 'On a call' after a start; the first write "
            "taking it away after an end), both logs in one process on one clock. In between: "
            "the real WebSocket, subscriber, parser, coordinator, status writer, scheduler, "
            "SQLite claim and the HTTP call, in the whole bot started as `rcstatus-bot run` "
            "starts it"
        ),
        "workload": _workload(call_seconds, config.scale),
        "conditions": conditions(config.scale),
        "baseline": baseline,
        "loads": loads,
        "ratio_p95": _ratios(loads, baseline, "p95_ms"),
        "ratio_start_p95": _ratios(loads, baseline, "start_p95_ms"),
        "ratio_end_p95": _ratios(loads, baseline, "end_p95_ms"),
        "ratio_taken_in_p95": _ratios(loads, baseline, "taken_in_p95_ms"),
    }


PRODUCTION_MEASURED: Final = (
    "taken in (taken_in_*): wall-clock time from the RingCentral simulator logging a presence "
    "change to the bot's status writer having the person's change (a consumer under the hub, "
    "told after the writer), on the one system clock both processes read; everything from the "
    "WebSocket to the writer's decision, with the write path running at Slack's budget in the "
    "same event loop. A phase ends once the bot has taken in every event sent and its write "
    "queue is empty, or at the deadline. slack_profile_set_* are the Slack simulator's own "
    "counts of the users.profile.set calls it answered from the phase's start to its end "
    "(written, 429, error); bot_scheduler is what the bot counted. Most events are never "
    "written, by design (writes are coalesced to fit the budget; the fidelity benchmark "
    "measures what that costs): `missing` and the write latencies (p50_ms...) cover only the "
    "events that were, and every 'On a call' waited out the call debounce"
)


def _workload(call_seconds: float, scale: float) -> str:
    return (
        f"event slots at the target rate: each ends the oldest call once it has lasted "
        f"{call_seconds:g} s (x{scale:g} simulated), else starts a call for a free person; "
        "calls still up when the phase's time is over end at the same rate; each person "
        "has at most one call at a time; a call connects without ringing. Most people "
        "make their first call of the run, so the bot looks their token up "
        "once (as after a restart)"
    )


def _ratios(
    loads: list[dict[str, Any]], baseline: dict[str, Any], key: str
) -> dict[str, float | None]:
    """Each load's figure over the baseline's, the standard's "ours vs baseline" ratio."""
    return {
        f"{load['target_rate_per_second']:g}/s": _ratio(load[key], baseline[key]) for load in loads
    }


def conditions(scale: float) -> dict[str, Any]:
    """What this benchmark changes from a default deployment, and what the defaults would add."""
    gap_hold = GAP_HOLD_AT_REAL_TIME / scale
    return {
        "time_scale": scale,
        "lifted": {
            "SLACK_PROFILE_WRITES_PER_MINUTE": f"{LIFTED} (default 50, Slack's Tier 3)",
            "SLACK_WRITES_PER_PROFILE_PER_MINUTE": f"{LIFTED} (default 10)",
            "slack_simulator": (
                f"tier_limits={{{PROFILE_SET_TIER}: {LIFTED}}} (users.profile.set is Tier 3, "
                f"50 a minute) and profile_writes_per_profile={LIFTED} (10 a minute)"
            ),
            "why": (
                "at Slack's 50 writes a minute most events at 50/s and 500/s are coalesced and "
                "never written, so there would be no latency to measure; the production "
                "configuration keeps the budget, and what it costs is the fidelity benchmark's "
                "subject"
            ),
        },
        "disabled": {
            "CALL_DEBOUNCE_SECONDS": (
                f"0 (default {DEFAULT_CALL_DEBOUNCE:g} s): with the default every start-of-call "
                f"write waits until the call has lasted {DEFAULT_CALL_DEBOUNCE:g} s, and calls "
                "shorter than that are never written"
            ),
        },
        "scaled_not_removed": {
            "gap_hold_seconds": round(gap_hold, 4),
            "note": (
                f"the scheduler holds each release {GAP_HOLD_AT_REAL_TIME:g} s / TIME_SCALE; at "
                f"time scale {scale:g} that is {gap_hold * 1000:.0f} ms, which the end-of-call "
                "figures include (nothing is subtracted). TIME_SCALE also shortens the bot's "
                f"rate window to {60 / scale:g} s, and `rcstatus-bot sim` sets "
                f"STATUS_TTL_SECONDS to {3600 / scale:g} s; both simulators run at the same "
                "scale. The call-length model's priors and the WebSocket heartbeat do not scale"
            ),
        },
        "defaults_would_add": {
            "start_of_call_seconds": DEFAULT_CALL_DEBOUNCE,
            "end_of_call_seconds": round(GAP_HOLD_AT_REAL_TIME - gap_hold, 4),
            "note": (
                "with the default settings at real time every start is written "
                f"{DEFAULT_CALL_DEBOUNCE:g} s later (the debounce) and every end "
                f"{GAP_HOLD_AT_REAL_TIME:g} s after the hang-up (the gap hold, {gap_hold:.4f} s "
                "of which is already in the end-of-call figures), and only while the budget "
                "does not bind"
            ),
        },
    }


def production_conditions(settings: Settings, scale: float) -> dict[str, Any]:
    """The limits in force, read back from the bot's own settings."""
    minute = 60 / scale
    return {
        "time_scale": scale,
        "slack_simulator": (
            "its defaults, Slack's documented limits: users.profile.set is Tier 3, 50 calls a "
            f"minute per workspace, and 10 a minute per profile; at time scale {scale:g} a "
            f"minute lasts {minute:g} s, so the workspace budget is {50 / minute:g} writes a "
            "real second"
        ),
        "bot": {
            "SLACK_PROFILE_WRITES_PER_MINUTE": settings.slack_profile_writes_per_minute,
            "SLACK_WRITES_PER_PROFILE_PER_MINUTE": settings.slack_writes_per_profile_per_minute,
            "CALL_DEBOUNCE_SECONDS": settings.call_debounce_seconds,
            "TIME_SCALE": settings.time_scale,
            "rate_window_seconds": settings.rate_window_seconds,
            "STATUS_TTL_SECONDS": settings.status_ttl_seconds,
            "note": (
                "the bot's defaults with the TIME_SCALE and STATUS_TTL_SECONDS `rcstatus-bot "
                "sim` sets; nothing overridden. The call debounce is not time-scaled, so a "
                f"call must last {settings.call_debounce_seconds:g} real seconds before 'On a "
                "call' is written; nor are the call-length model's priors (a 4-minute mean), "
                "which the scheduler relearns from the calls it sees"
            ),
        },
    }


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return round(value / base, 2)


def summarise(result: dict[str, Any]) -> str:
    parts = [f"{result['people']:,} people, whole bot"]
    lifted = result.get("lifted")
    if lifted is not None:
        parts[0] += ", budget lifted, no debounce"
        parts += _lifted_parts(lifted)
    production = result.get("production")
    if production is not None:
        parts.append(_production_part(production))
    return joined(parts)


def _lifted_parts(result: dict[str, Any]) -> list[str]:
    base = result["baseline"]
    hold = result["conditions"]["scaled_not_removed"]["gap_hold_seconds"] * 1000
    parts = []
    for load in result["loads"]:
        rate = f"{load['target_rate_per_second']:g}/s"
        parts.append(
            f"{rate}: start p50/p95/p99 {_triple(load, 'start_')} ms, end {_triple(load, 'end_')}"
            f" ms, missing {load['missing']}{_stuck(load)}, bot CPU "
            f"{_num(load['bot_cpu_percent_of_one_core'], 0)}%, RSS {_num(load['bot_rss_mib'], 0)}"
            f" MiB, p95 x{_ratio_text(result['ratio_p95'][rate])}" + _sustained(load)
        )
    parts.append(
        f"baseline {base['target_rate_per_second']:g}/s: start p95 {_num(base['start_p95_ms'])}"
        f" ms, end p95 {_num(base['end_p95_ms'])} ms (ends include a {hold:.0f} ms gap hold)"
    )
    return parts


def _production_part(result: dict[str, Any]) -> str:
    """One clause: intake latency at each load, what it cost, and whether Slack said no."""
    loads = result["loads"]
    phases = [result["baseline"], *loads]
    rates = "/".join(f"{load['target_rate_per_second']:g}" for load in loads)
    p95s = "/".join(_ms(load["taken_in_p95_ms"]) for load in loads)
    ratios = "/".join(_ratio_text(value) for value in result["ratio_taken_in_p95"].values())
    cpu = "/".join(_num(load["bot_cpu_percent_of_one_core"], 0) for load in loads)
    writes = "/".join(str(load["slack_profile_set_written"]) for load in loads)
    late = sum(phase["bot_events_not_taken_in_at_end"] for phase in phases)
    limited = sum(phase["slack_profile_set_429s"] for phase in phases)
    return (
        f"production budget: taken in p95 {p95s} ms at {rates}/s (x{ratios} of "
        f"{result['baseline']['target_rate_per_second']:g}/s), "
        + (f"{late} events never taken in, " if late else "")
        + f"bot CPU {cpu}%, {writes} writes, "
        + (f"{limited} 429s (OVER BUDGET)" if limited else "0 429s")
    )


def _ms(value: float | None) -> str:
    return _num(value, 0 if value is not None and value >= 1000 else 1)


def _triple(phase: dict[str, Any], prefix: str) -> str:
    values = (phase[f"{prefix}p50_ms"], phase[f"{prefix}p95_ms"], phase[f"{prefix}p99_ms"])
    digits = 0 if any(v is not None and v >= 1000 for v in values) else 1
    return "/".join(_num(value, digits) for value in values)


def _sustained(load: dict[str, Any]) -> str:
    """Said only when the bot fell behind: what it managed instead of the target."""
    sustained = load["written_per_second_until_last_write"]
    if sustained is None or sustained >= 0.9 * load["target_rate_per_second"]:
        return ""
    return f" (fell behind: {sustained:.0f} events/s written)"


def _stuck(phase: dict[str, Any]) -> str:
    stuck = phase["still_showing_call_after_phase"]
    return f" ({stuck} left showing 'On a call')" if stuck else ""


def _ratio_text(ratio: float | None) -> str:
    return _num(ratio, 2 if ratio is None or ratio < 10 else 0)


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else fmt(value, digits)


def main(argv: list[str] | None = None, *, directory: Path = RESULTS_DIR) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--rates", type=float, nargs="+", default=[50.0, 500.0])
    parser.add_argument("--baseline-rate", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--scale", type=float, default=60.0, help="simulators' time scale")
    parser.add_argument(
        "--call-seconds", type=float, default=1.0, help="real seconds per call (lifted)"
    )
    parser.add_argument(
        "--production-call-seconds",
        type=float,
        default=PRODUCTION_CALL_SECONDS,
        help="real seconds per call (production; longer than the default call debounce)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=30.0,
        help="seconds after a phase for its writes (lifted) or to take every event in (production)",
    )
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=CONFIGS,
        default=list(CONFIGS),
        help="lifted: Slack's budget lifted, no call debounce; production: Slack's limits and "
        "the bot's defaults",
    )
    args = parser.parse_args(argv)
    result = asyncio.run(
        run(
            args.people,
            tuple(args.rates),
            args.baseline_rate,
            args.duration,
            args.scale,
            args.call_seconds,
            args.deadline,
            configs=[name for name in CONFIGS if name in args.configs],
            production_call_seconds=args.production_call_seconds,
        )
    )
    summary = summarise(result)
    write_result("latency", result, summary=summary, directory=directory)
    progress(f"latency: {summary}")
    return result


if __name__ == "__main__":
    main()
