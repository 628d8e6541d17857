"""Intake benchmark: presence events at contact-centre rates through the whole bot, at real time.

The bot runs in this process as `rcstatus-bot run` runs it, against both simulators with Slack's
and RingCentral's real limits (time scale 1) and the bot's default debounces; the simulators and
the load generator run in a spawned child. The load is a contact centre's mix: queue calls that
ring many agents at once (one answers, the others stop ringing), direct calls that ring and are
answered, outbound calls, holds, hang-ups, Do Not Disturb and meetings.

What is measured, for every presence event the bot reads off its WebSocket: the intake lag, from
the frame being read to the hub having told every consumer (the status writer's decision
included); the bot's backlog (extensions waiting for the hub, and events sent but not yet read);
the bot's CPU and RSS; Slack's 429s as the Slack simulator counted them. Then the cost per event
at three company sizes, and the time from a restart to the first correct status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import heapq
import random
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import psutil  # type: ignore[import-untyped]

from bench.common import (
    RESULTS_DIR,
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
from bot.policy import DEFAULT_PREFERENCES, SlackStatus, call_status
from bot.sim.company import build_company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral import RingCentralSimulator
from bot.sim.slack import SlackSimulator
from bot.slack.scheduler import Desire, SendOutcome, StatusScheduler

SETUP_TIMEOUT: Final = 1800.0
SAMPLE_EVERY: Final = 0.25
TAIL_SECONDS: Final = 20.0
"""After the sending window, calls still up end as they fall due; the phase waits this long."""
LAG_TARGET_MS: Final = 50.0
PREVIOUS_LATENCY: Final = {
    "source": "bench/results/latency.json, production configuration, as committed before this "
    "benchmark existed (10,000 people, time scale 60, calls connecting without ringing)",
    "500_per_second_taken_in_p95_ms": 20952,
    "500_per_second_bot_cpu_percent": 89,
    "50_per_second_taken_in_p95_ms": 10.6,
}


@dataclass(frozen=True, slots=True)
class ChildConfig:
    people: int
    seed: int
    app_port: int


@dataclass(frozen=True, slots=True)
class Plan:
    rate: float
    seconds: float
    call_seconds: tuple[float, float]
    """How long an answered call lasts (uniform between), in real seconds."""


# ---------------------------------------------------------------- the child: simulators, load


def simulators_main(conn: Connection, config: ChildConfig) -> None:
    serve_child(conn, _serve, config)


async def _serve(conn: Connection, config: ChildConfig) -> None:
    company = build_company(config.people, seed=config.seed)
    scale = TimeScale(1.0)
    app_url = f"http://127.0.0.1:{config.app_port}"
    rc = RingCentralSimulator(company, time_scale=scale, event_log_size=10_000)
    slack = SlackSimulator(company, time_scale=scale, app_url=app_url)  # Slack's real limits
    async with rc, slack:
        env = simulator_env(rc, slack, app_url=app_url, time_scale=scale)
        conn.send(("ready", {"env": env, "app_id": slack.app_id}))
        mix: Mix | None = None
        while True:
            message = await receive(conn, within=24 * 3600.0)
            try:
                kind = message[0]
                if kind == "stop":
                    return
                if kind == "connect":
                    links: list[tuple[str, str]] = message[1]
                    tokens = {user: slack.grant_user_token(user) for user, _ in links}
                    mix = Mix(rc, slack, links, random.Random(config.seed))
                    conn.send(("tokens", tokens))
                elif kind == "phase" and mix is not None:
                    conn.send(("sent", await mix.drive(message[1])))
                elif kind == "slack":
                    conn.send(("slack", slack.stats()))
                elif kind == "calls_now" and mix is not None:
                    conn.send(("calls_now", mix.start_calls(int(message[1]))))
                elif kind == "shown" and mix is not None:
                    conn.send(("shown", mix.shown(message[1])))
                else:
                    raise ValueError(f"unknown or early command {kind!r}")
            except Exception:
                conn.send(("error", traceback.format_exc()))


@dataclass(order=True, slots=True)
class _Due:
    at: float
    order: int
    step: Callable[[], int] = field(compare=False)


class Mix:
    """A contact centre's presence events at a steady rate.

    Scenarios, drawn by weight: a queue call ringing 5-25 free agents at once, one answering
    after 1-3 s and the others' ringing stopping; a direct inbound call ringing 1-3 s, then
    answered; an outbound call; a third of answered calls go on hold and back; Do Not Disturb
    and meetings a little longer than calls (3-10 s and 5-16 s with calls of 2-8 s). Every
    step is one presence change of one extension, and
    the pacing counts each. When nobody is free, the oldest pending step happens early.
    """

    WEIGHTS: Final = (("queue", 0.06), ("inbound", 0.5), ("outbound", 0.3), ("dnd", 0.07),
                      ("meeting", 0.07))  # fmt: skip

    def __init__(
        self,
        rc: RingCentralSimulator,
        slack: SlackSimulator,
        links: list[tuple[str, str]],
        rng: random.Random,
    ) -> None:
        self._rc = rc
        self._slack = slack
        self._rng = rng
        self._user_of = {int(extension): user for user, extension in links}
        extensions = list(self._user_of)
        rng.shuffle(extensions)
        self._idle: deque[int] = deque(
            e for e in extensions if rc.presence(e).get("telephonyStatus") == "NoCall"
        )
        self._due: list[_Due] = []
        self._order = 0
        self._plan = Plan(0, 0, (2.0, 8.0))
        self._call = call_status(DEFAULT_PREFERENCES)
        self.kinds: dict[str, int] = {}

    # ---- driving

    async def drive(self, plan: Plan) -> dict[str, Any]:
        self._plan = plan
        self.kinds = {}
        process = psutil.Process()
        cpu_before = sum(process.cpu_times()[:2])
        began = time.monotonic()
        wall_began = time.time()
        sent = 0
        early = 0
        timeline: list[tuple[float, int]] = []
        next_sample = began
        while True:
            now = time.monotonic()
            elapsed = now - began
            if now >= next_sample:
                timeline.append((time.time(), sent))
                next_sample += SAMPLE_EVERY
            sending = elapsed < plan.seconds
            if not sending and (not self._due or elapsed > plan.seconds + TAIL_SECONDS):
                break
            while self._due and self._due[0].at <= now:
                sent += heapq.heappop(self._due).step()
            if sending:
                allowed = int(plan.rate * elapsed)
                while sent < allowed:
                    started = self._start_scenario(now)
                    if started == 0:
                        if not self._due:
                            break
                        early += 1
                        started = heapq.heappop(self._due).step()
                    sent += started
            await asyncio.sleep(0.002)
        took = time.monotonic() - began
        timeline.append((time.time(), sent))
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        window = min(took, plan.seconds)
        return {
            "target_rate_per_second": plan.rate,
            "sending_seconds": round(window, 1),
            "tail_seconds": round(took - window, 1),
            "events_sent": sent,
            "events_in_sending_window": _sent_by(timeline, wall_began + plan.seconds),
            "steps_taken_early_nobody_free": early,
            "events_by_kind": dict(sorted(self.kinds.items())),
            "simulators_cpu_percent_of_one_core": round(100 * cpu / took, 1),
            "timeline": timeline,
            "wall_began": wall_began,
        }

    def _later(self, delay: float, step: Callable[[], int]) -> None:
        self._order += 1
        heapq.heappush(self._due, _Due(time.monotonic() + delay, self._order, step))

    def _count(self, kind: str, n: int = 1) -> int:
        self.kinds[kind] = self.kinds.get(kind, 0) + n
        return n

    def _start_scenario(self, now: float) -> int:
        kind = self._rng.choices([k for k, _ in self.WEIGHTS], [w for _, w in self.WEIGHTS])[0]
        if kind == "queue":
            agents = min(self._rng.randint(5, 25), len(self._idle))
            if agents >= 2:
                return self._queue_call(agents)
            kind = "inbound"
        if not self._idle:
            return 0
        extension = self._idle.popleft()
        if kind == "inbound":
            call_id = self._rc.call(extension, "ringing")
            self._later(self._rng.uniform(1, 3), lambda: self._answer(extension, call_id))
            return self._count("ring")
        if kind == "outbound":
            call_id = self._rc.call(extension, "connected", direction="Outbound")
            self._talk(extension, call_id)
            return self._count("outbound_connect")
        if kind == "dnd":
            self._rc.set_presence(extension, dndStatus="DoNotAcceptAnyCalls")
            low, high = self._plan.call_seconds
            self._later(
                self._rng.uniform(1.5 * low, 1.25 * high),
                lambda: self._presence_back(extension, "dnd"),
            )
            return self._count("dnd_on")
        self._rc.set_presence(extension, meetingStatus="Connected")
        low, high = self._plan.call_seconds
        self._later(
            self._rng.uniform(2.5 * low, 2 * high),
            lambda: self._presence_back(extension, "meeting"),
        )
        return self._count("meeting_start")

    def _queue_call(self, agents: int) -> int:
        ringing = [self._idle.popleft() for _ in range(agents)]
        calls = [(extension, self._rc.call(extension, "ringing")) for extension in ringing]

        def answered() -> int:
            (winner, winner_call), others = calls[0], calls[1:]
            self._rc.call(winner, "connected", call_id=winner_call)
            self._talk(winner, winner_call)
            for extension, call_id in others:
                self._rc.call(extension, "ended", call_id=call_id)
                self._idle.append(extension)
            return self._count("queue_answer") + self._count("queue_ring_stop", len(others))

        self._later(self._rng.uniform(1, 3), answered)
        return self._count("queue_ring", agents)

    def _answer(self, extension: int, call_id: str) -> int:
        self._rc.call(extension, "connected", call_id=call_id)
        self._talk(extension, call_id)
        return self._count("answer")

    def _talk(self, extension: int, call_id: str) -> None:
        low, high = self._plan.call_seconds
        length = self._rng.uniform(low, high)
        if self._rng.random() < 1 / 3:

            def hold() -> int:
                self._rc.call(extension, "hold", call_id=call_id)
                self._later(length / 3, resume)
                return self._count("hold")

            def resume() -> int:
                self._rc.call(extension, "connected", call_id=call_id)
                self._later(length / 3, hang_up)
                return self._count("resume")

            self._later(length / 3, hold)
        else:
            self._later(length, lambda: hang_up())

        def hang_up() -> int:
            self._rc.call(extension, "ended", call_id=call_id)
            self._idle.append(extension)
            return self._count("hang_up")

    def _presence_back(self, extension: int, kind: str) -> int:
        if kind == "dnd":
            self._rc.set_presence(extension, dndStatus="TakeAllCalls")
        else:
            self._rc.set_presence(extension, meetingStatus="Disconnected")
        self._idle.append(extension)
        return self._count(f"{kind}_off")

    # ---- the restart figure

    def start_calls(self, count: int) -> list[str]:
        """Connect calls for `count` free people now and leave them up; their user ids."""
        users = []
        for _ in range(count):
            extension = self._idle.pop()
            self._rc.call(extension, "connected")
            users.append(self._user_of[extension])
        return users

    def shown(self, users: list[str]) -> int:
        """How many of `users` Slack shows on a call."""
        call = (self._call.text, self._call.emoji)
        return sum(
            (u["status_text"], u["status_emoji"]) == call
            for u in (self._slack.user(user) for user in users)
        )


def _sent_by(timeline: list[tuple[float, int]], wall: float) -> int:
    return max((sent for at, sent in timeline if at <= wall), default=0)


# ---------------------------------------------------------------- the parent: the bot


class Watch:
    """Samples the bot while a phase runs: backlog, events read, intake lags, RSS."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot
        self._process = psutil.Process()
        self._applied = bot.stats().intake.applied
        self.lags: list[float] = []
        self.samples: list[tuple[float, int, int]] = []
        """(unix time, events waiting for the hub, events read off the socket so far)."""
        self.rss_peak = 0
        self.lost_lags = 0
        self.cpu: list[tuple[float, float]] = []
        """(unix time, the process's CPU seconds so far) at each sample."""

    async def run(self) -> None:
        while True:
            self.take()
            await asyncio.sleep(SAMPLE_EVERY)

    def take(self) -> None:
        stats = self._bot.stats().intake
        fresh = stats.applied - self._applied
        self._applied = stats.applied
        if fresh:
            recent = self._bot.intake_lags()
            self.lost_lags += max(0, fresh - len(recent))
            self.lags.extend(recent[-fresh:])
        self.samples.append(
            (time.time(), stats.received - stats.folded - stats.applied, stats.received)
        )
        self.rss_peak = max(self.rss_peak, self._process.memory_info().rss)
        times = self._process.cpu_times()
        self.cpu.append((time.time(), times.user + times.system))


async def measure(
    bot: Bot, child_process: Child, plan: Plan, label: str, profiler: Any = None
) -> dict[str, Any]:
    process = psutil.Process()
    if profiler is not None:
        profiler.enable()
    before = bot.stats()
    slack_before = await child_process.ask(("slack",), "slack", within=60)
    watch = Watch(bot)
    sampling = asyncio.create_task(watch.run())
    try:
        cpu_before = sum(process.cpu_times()[:2])
        child_process.send(("phase", plan))
        sent: dict[str, Any] = await child_process.expect(
            "sent", within=plan.seconds * 3 + TAIL_SECONDS + 120
        )
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        taken = await _taken_in(bot, before.intake.received + sent["events_sent"])
    finally:
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
        if profiler is not None:
            profiler.disable()
    watch.take()
    after = bot.stats()
    slack_after = await child_process.ask(("slack",), "slack", within=60)
    timeline = sent.pop("timeline")
    wall_began = sent.pop("wall_began")
    received = after.intake.received - before.intake.received
    window_end = wall_began + plan.seconds
    unread = _unread(timeline, watch.samples, before.intake.received)
    in_window = [s for s in watch.samples if wall_began <= s[0] <= window_end]
    lags = watch.lags
    phase_seconds = sent["sending_seconds"] + sent["tail_seconds"]
    limited = {
        method: n - slack_before["rate_limited"].get(method, 0)
        for method, n in slack_after["rate_limited"].items()
        if n - slack_before["rate_limited"].get(method, 0)
    }
    result: dict[str, Any] = {
        **sent,
        "events_read_by_bot": received,
        "all_read_after_sending_stopped_seconds": taken,
        "events_folded_by_bot": after.intake.folded - before.intake.folded,
        "intake_lag_samples": len(lags),
        "intake_lag_samples_lost": watch.lost_lags,
        **_ms("intake_lag_", lags),
        "intake_lag_share_over_50_ms": round(
            sum(lag > LAG_TARGET_MS / 1000 for lag in lags) / max(1, len(lags)), 5
        ),
        "backlog_events_max": max((s[1] for s in watch.samples), default=0),
        "backlog_events_max_by_10_s": _by_window(in_window, wall_began, lambda s: s[1]),
        "unread_events_max": max((u for _, u in unread), default=0),
        "unread_events_max_by_10_s": _by_window(unread, wall_began, lambda s: s[1]),
        "bot_cpu_percent_of_one_core": round(100 * cpu / phase_seconds, 1),
        "bot_cpu_percent_while_sending": _cpu_between(watch.cpu, wall_began, window_end),
        "bot_cpu_us_per_event": round(1e6 * cpu / max(1, received), 1),
        "bot_rss_mib": round(process.memory_info().rss / 2**20, 1),
        "bot_rss_peak_mib": round(watch.rss_peak / 2**20, 1),
        "slack_429s": limited,
        "slack_profile_set_calls": slack_after["calls"].get("users.profile.set", 0)
        - slack_before["calls"].get("users.profile.set", 0),
        "bot_scheduler_rate_limited": after.scheduler.rate_limited - before.scheduler.rate_limited,
        "bot_transitions": after.coordinator.published - before.coordinator.published,
    }
    result["backlog_never_grew"] = _never_grew(result["backlog_events_max_by_10_s"]) and (
        _never_grew(result["unread_events_max_by_10_s"])
    )
    progress(
        f"intake: {label}: {received:,} events read, lag p50/p99/max "
        f"{result['intake_lag_p50_ms']}/{result['intake_lag_p99_ms']}/"
        f"{result['intake_lag_max_ms']} ms, backlog max {result['backlog_events_max']}, "
        f"unread max {result['unread_events_max']}, folded {result['events_folded_by_bot']}, "
        f"CPU {result['bot_cpu_percent_of_one_core']}% "
        f"({result['bot_cpu_percent_while_sending']}% while sending) "
        f"({result['bot_cpu_us_per_event']} us/event), 429s {sum(limited.values())}"
    )
    return result


async def _taken_in(bot: Bot, received: int) -> float | None:
    """Seconds after the phase until the bot had read every event sent and fed it to the hub."""
    began = time.monotonic()
    try:
        await wait_until(
            lambda: (
                (s := bot.stats().intake).received >= received
                and s.applied + s.folded == s.received
            ),
            within=60.0,
            what="the bot to read every event",
        )
    except TimeoutError:
        return None
    return round(time.monotonic() - began, 2)


def _unread(
    timeline: list[tuple[float, int]], samples: list[tuple[float, int, int]], read_before: int
) -> list[tuple[float, int]]:
    """Events sent but not yet read by the bot, at each of the bot's samples (the socket's and
    the kernel's buffers: a reader that falls behind shows here, not in its own backlog)."""
    out = []
    for at, _, read in samples:
        sent = max((n for t, n in timeline if t <= at), default=0)
        out.append((at, max(0, sent - (read - read_before))))
    return out


def _cpu_between(samples: list[tuple[float, float]], began: float, ended: float) -> float | None:
    """The process's CPU over [began, ended] (percent of one core), from the nearest samples
    inside it: the sending window alone, without the tail where calls only end."""
    inside = [sample for sample in samples if began <= sample[0] <= ended]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    (first_at, first_cpu), (last_at, last_cpu) = inside[0], inside[-1]
    return round(100 * (last_cpu - first_cpu) / (last_at - first_at), 1)


def _by_window(samples: list[Any], began: float, value: Callable[[Any], int]) -> list[int]:
    windows: dict[int, int] = {}
    for sample in samples:
        index = int((sample[0] - began) // 10)
        windows[index] = max(windows.get(index, 0), value(sample))
    return [windows[i] for i in sorted(windows) if i >= 0]


def _never_grew(maxima: list[int]) -> bool:
    """No 10-second window's peak well above the first one's: the backlog does not build up."""
    if len(maxima) < 2:
        return True
    return max(maxima[1:]) <= max(2 * maxima[0], maxima[0] + 200)


def _ms(prefix: str, samples: list[float]) -> dict[str, float | None]:
    def value(share: float) -> float | None:
        return round(percentile(samples, share) * 1000, 2) if samples else None

    return {
        f"{prefix}p50_ms": value(0.50),
        f"{prefix}p95_ms": value(0.95),
        f"{prefix}p99_ms": value(0.99),
        f"{prefix}max_ms": round(max(samples) * 1000, 2) if samples else None,
    }


@contextlib.contextmanager
def simulators(people: int, seed: int, port: int) -> Iterator[Child]:
    with child(simulators_main, ChildConfig(people, seed, port), "intake-simulators") as c:
        yield c


async def company_run(
    people: int,
    *,
    seed: int,
    rates: list[float],
    seconds: float,
    baseline_rate: float,
    call_seconds: tuple[float, float],
    restart: bool,
    restart_calls: int = 20,
    profiler: Any = None,
) -> dict[str, Any]:
    """One company: set up, a baseline phase, then each rate; optionally the restart figure."""
    port = free_port()
    result: dict[str, Any] = {"people": people}
    with simulators(people, seed, port) as sims, tempfile.TemporaryDirectory() as tmp:
        ready = await sims.expect("ready", within=SETUP_TIMEOUT)
        env = {**ready["env"], "DATABASE_URL": f"sqlite+aiosqlite:///{Path(tmp) / 'bot.db'}"}
        settings = Settings.from_env(env, env_file=None)
        began = time.monotonic()
        bot = await Bot.create(settings)
        try:
            await bot.start()
            await asyncio.wait_for(bot.wait_ready(), SETUP_TIMEOUT)
            result["bot_up_after_seconds"] = round(time.monotonic() - began, 1)
            links = [
                (link.user_id, link.extension_id) for link in await bot.store.links(bot.team_id)
            ]
            tokens = await sims.ask(("connect", links), "tokens", within=SETUP_TIMEOUT)
            await connect_everyone(bot, ready["app_id"], tokens, label=f"intake {people:,}")
            await wait_until(
                lambda: bot.pending_writes() == 0, within=SETUP_TIMEOUT, what="set-up writes"
            )
            result["people_connected"] = len(tokens)
            result["setup_seconds"] = round(time.monotonic() - began, 1)
            phases = []
            for rate in [baseline_rate, *rates]:
                plan = Plan(rate, seconds, call_seconds)
                label = f"{people:,} people, {rate:g}/s"
                progress(f"intake: {label} for {seconds:g} s")
                loaded = profiler if rate != baseline_rate else None
                phases.append(await measure(bot, sims, plan, label, loaded))
            result["baseline"], result["loads"] = phases[0], phases[1:]
        finally:
            await bot.stop()
        if restart:
            result["restart"] = await restart_figure(settings, sims, restart_calls)
    return result


async def restart_figure(settings: Settings, sims: Child, calls: int) -> dict[str, Any]:
    """With the bot down, `calls` people start calls; the time from the bot's start to the first
    (and the last) of them shown on a call in Slack, with everyone's tokens in the store. The
    presence snapshot that finds them is paged at 1,000 extensions a request in RingCentral's
    Heavy group (10 a minute): beyond 10,000 extensions its last page waits for the window."""
    users: list[str] = await sims.ask(("calls_now", calls), "calls_now", within=60)
    began = time.monotonic()
    bot = await Bot.create(settings)
    first = last = ready = None
    try:
        await bot.start()
        started = time.monotonic() - began
        while time.monotonic() < began + 180:
            shown = await sims.ask(("shown", users), "shown", within=60)
            now = time.monotonic() - began
            if ready is None and bot.ready:
                ready = now
            if shown and first is None:
                first = now
            if shown == len(users):
                last = now
                break
            await asyncio.sleep(0.1)
    finally:
        await bot.stop()
    figure = {
        "people_on_calls_at_start": len(users),
        "serving_after_seconds": round(started, 2),
        "snapshot_complete_after_seconds": None if ready is None else round(ready, 2),
        "first_correct_status_after_seconds": None if first is None else round(first, 2),
        "all_correct_after_seconds": None if last is None else round(last, 2),
    }
    progress(f"intake: restart: {figure}")
    return figure


async def run(args: argparse.Namespace, profiler: Any = None) -> dict[str, Any]:
    call_seconds = (args.call_min, args.call_max)
    main = await company_run(
        args.people,
        seed=args.seed,
        rates=args.rates,
        seconds=args.seconds,
        baseline_rate=args.baseline,
        call_seconds=call_seconds,
        restart=True,
        restart_calls=args.restart_calls,
        profiler=profiler,
    )
    sizes = []
    for people in args.sizes:
        progress(f"intake: cost at {people:,} people, {args.size_rate:g}/s")
        try:
            sizes.append(
                await company_run(
                    people,
                    seed=args.seed,
                    rates=[args.size_rate],
                    seconds=args.size_seconds,
                    baseline_rate=args.baseline,
                    call_seconds=call_seconds,
                    restart=False,
                )
            )
        except Exception as exc:  # one size failing must not cost the others their figures
            progress(f"intake: {people:,} people failed: {exc!r}")
            sizes.append({"people": people, "error": repr(exc)[:500]})
    progress("intake: the scheduler alone, per write, as the queue grows")
    scheduler = await scheduler_cost(args.scheduler_sizes)
    return {
        "main": main,
        "sizes": sizes,
        "scheduler": scheduler,
        "previous_latency_benchmark": PREVIOUS_LATENCY,
    }


async def _run_with(args: argparse.Namespace, profiler: Any) -> dict[str, Any]:
    if args.slow_callbacks is not None:
        asyncio.get_running_loop().slow_callback_duration = args.slow_callbacks
    return await run(args, profiler)


async def scheduler_cost(sizes: list[int], writes: int = 100) -> list[dict[str, Any]]:
    """The scheduler alone, in virtual time, with `size` calls queued to be shown and Slack's
    budget binding: its CPU time per write chosen and made (the writes themselves answer at
    once), the whole run loop included, so that its growth with the queue shows."""
    results = []
    for size in sizes:
        clock = _VirtualClock()
        scheduler = StatusScheduler(clock=clock, wall_clock=clock, sleep=clock.sleep)
        sender = _InstantSender(scheduler, first=1, last=writes + 1)
        call = SlackStatus("On a call", ":telephone_receiver:", 0)
        for person in range(size):
            busy_since = clock.now - 10 - person % 600
            scheduler.submit(Desire(f"U{person}", "show", call, busy_since=busy_since))
        running = asyncio.create_task(scheduler.run(sender))
        try:
            await asyncio.wait_for(sender.done.wait(), 600.0)
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        results.append(
            {
                "queued": size,
                "writes_timed": writes,
                "cpu_ms_per_write": round(1000 * sender.cpu / writes, 3),
            }
        )
        progress(f"intake: scheduler with {size:,} queued: {results[-1]}")
    return results


class _VirtualClock:
    """Monotonic and wall time at once, moved on by the scheduler's own sleeps."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class _InstantSender:
    """Every write succeeds at once, and the profile then shows it (as the writer reports);
    the process CPU time from write `first` to write `last` is kept."""

    def __init__(self, scheduler: StatusScheduler, *, first: int, last: int) -> None:
        self._scheduler = scheduler
        self._first, self._last = first, last
        self._started = 0.0
        self.sent = 0
        self.cpu = 0.0
        self.done = asyncio.Event()

    async def send(self, desire: Desire, expiration: int) -> SendOutcome:
        self.sent += 1
        if self.sent == self._first:
            self._started = time.process_time()
        elif self.sent == self._last:
            self.cpu = time.process_time() - self._started
            self.done.set()
        shown = dataclasses.replace(desire.status, expiration=expiration)
        self._scheduler.submit(dataclasses.replace(desire, shown=shown))
        return SendOutcome.OK


def summarise(result: dict[str, Any]) -> str:
    main = result["main"]
    parts = [f"{main['people']:,} people, real time, default debounces"]
    for load in [main["baseline"], *main["loads"]]:
        parts.append(
            f"{load['target_rate_per_second']:g}/s: lag p99 {fmt(load['intake_lag_p99_ms'])} ms, "
            f"CPU {fmt(load['bot_cpu_percent_while_sending'] or 0, 0)}% while sending, backlog max "
            f"{load['backlog_events_max']}, {sum(load['slack_429s'].values())} 429s"
        )
    costs = [
        f"{size['people']:,}: {fmt(size['loads'][0]['bot_cpu_us_per_event'], 0)} us/event, "
        f"RSS {fmt(size['loads'][0]['bot_rss_mib'], 0)} MiB"
        if "loads" in size
        else f"{size['people']:,}: FAILED"
        for size in result["sizes"]
    ]
    if costs:
        parts.append("per event " + "; ".join(costs))
    restart = main.get("restart")
    if restart:
        parts.append(
            f"restart: first correct status after {restart['first_correct_status_after_seconds']} s"
        )
    return joined(parts)


def main(argv: list[str] | None = None, *, directory: Path = RESULTS_DIR) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.intake", description=__doc__)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--rates", type=float, nargs="*", default=[500.0, 2000.0, 5000.0])
    parser.add_argument("--baseline", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 50_000])
    parser.add_argument("--size-rate", type=float, default=400.0)
    parser.add_argument("--scheduler-sizes", type=int, nargs="*", default=[1_000, 10_000, 50_000])
    parser.add_argument("--size-seconds", type=float, default=30.0)
    parser.add_argument("--call-min", type=float, default=2.0)
    parser.add_argument("--call-max", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--restart-calls", type=int, default=20, help="people on calls while the bot restarts"
    )
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile of the bot's loaded phases here"
    )
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results")
    parser.add_argument(
        "--slow-callbacks",
        type=float,
        metavar="SECONDS",
        help="asyncio debug mode: log every step of the loop that runs longer than this",
    )
    args = parser.parse_args(argv)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    # Only the loaded phases are profiled: set-up and the baseline would drown them.
    result = asyncio.run(_run_with(args, profiler), debug=args.slow_callbacks is not None)
    if profiler is not None:
        profiler.dump_stats(args.profile)
    if not args.no_save:
        write_result("intake", result, summary=summarise(result), directory=directory)
    return result


if __name__ == "__main__":
    main()
