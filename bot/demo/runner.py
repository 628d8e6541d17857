"""Runs one demo: simulators and bot up, people connected, the day played, wound down, reported."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import random
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TextIO, TypeVar

from rich.console import Console
from rich.live import Live

from bot.api.keys import ApiKeys, Scope
from bot.app import Bot
from bot.config import Settings
from bot.demo.call_types import Cast, cast_for, show_call_types
from bot.demo.observer import Observer
from bot.demo.receiver import DemoReceiver
from bot.demo.view import (
    Counters,
    Latency,
    LiveView,
    Report,
    Snapshot,
    plain_line,
    summary,
)
from bot.demo.workload import TICK, Actor, Pace, Workload, cast, cast_roles
from bot.errors import BotError
from bot.logs import RedactingFilter, redacting_handler
from bot.presence import Availability
from bot.sim.company import build_company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral import RingCentralSimulator
from bot.sim.slack import SlackSimulator

_T = TypeVar("_T")

DEFAULT_USERS: Final = 25
DEFAULT_TIME_SCALE: Final = 4.0
"""A Slack minute lasts 15 s: a 30-second demo sees two rate windows, and every limit keeps its
real size within its window, so the budget binds exactly as it would for a real office."""

CONNECT_CONCURRENCY: Final = 4
CONNECTS_PER_WINDOW: Final = 80
"""oauth.v2.access is Tier 4 (100 a minute); the rest of the tier is left for retries."""

REFRESH: Final = 0.25
PLAIN_EVERY: Final = 5.0
SNAPSHOT_DEADLINE: Final = 30.0
SETTLE_SIMULATED: Final = 10.0
"""Simulated seconds to wait once nothing is queued: the scheduler leaves a release it would
barely beat to the status's own expiration, which takes a few (simulated) seconds to lapse."""
SETTLE_DEADLINE: Final = 60.0

Phase = Literal["starting", "running", "settling", "stopping"]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What `rcstatus-bot demo` was asked for: how many people, how long, how fast, how shown."""

    users: int = DEFAULT_USERS
    seconds: float | None = None
    time_scale: float = DEFAULT_TIME_SCALE
    json: bool = False
    seed: int = 1
    rc_switches: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for RingCentralSimulator's switches; none: the guide's defaults."""


class Aborted(Exception):
    """A second Ctrl-C: skip whatever is being waited for and clean up."""


class Interrupts:
    """Ctrl-C or SIGTERM once winds the demo down; twice skips the waiting; a third is Python's."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.stop = asyncio.Event()
        self.abort = asyncio.Event()
        self._installed = False

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._loop.add_signal_handler(signum, self._signalled)
        self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._loop.remove_signal_handler(signum)
            self._installed = False

    def _signalled(self) -> None:
        if not self.stop.is_set():
            self.stop.set()
            return
        self.abort.set()
        # Whatever still hangs after this is Python's default Ctrl-C to interrupt.
        self.uninstall()

    async def guard(self, work: Awaitable[_T]) -> _T:
        """`work`, unless a second interrupt comes first (then Aborted)."""
        task = asyncio.ensure_future(work)
        aborted = asyncio.ensure_future(self.abort.wait())
        try:
            await asyncio.wait((task, aborted), return_when=asyncio.FIRST_COMPLETED)
        finally:
            aborted.cancel()
            await asyncio.gather(aborted, return_exceptions=True)
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise Aborted

    async def sleep_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=max(0.0, seconds))


# ------------------------------------------------------------------------------------ the demo


@dataclass(frozen=True, slots=True)
class Stage:
    """What is running: both simulators, the bot (as the demo may look at it), and the people."""

    rc: RingCentralSimulator
    slack: SlackSimulator
    bot: Bot
    scale: TimeScale
    actors: list[Actor]
    observer: Observer
    receiver: DemoReceiver


class Demo:
    """One run: simulators, bot, connections, the workload, the wind-down and the report."""

    def __init__(
        self, options: DemoOptions, workdir: Path, out: TextIO, interrupts: Interrupts
    ) -> None:
        self.options = options
        self._workdir = workdir
        self._out = out
        self._interrupts = interrupts
        self._console = Console(file=out)
        self._interactive = not options.json and self._console.is_terminal
        """A live view on a terminal; otherwise a progress line now and then (pipes, CI logs)."""
        self._plain_at = -math.inf
        self._rng = random.Random(f"rcstatus-demo/{options.seed}")
        self._phase: Phase = "starting"
        self._note = "starting the simulators and the bot…"
        self._started = time.monotonic()
        self._workload_started: float | None = None
        self._workload_stopped: float | None = None
        self._observer: Observer | None = None
        self._receiver: DemoReceiver | None = None
        self._live: Live | None = None
        self._call_debounce = 0.0
        self._call_types: Cast | None = None
        self._call_types_shown: list[str] = []

    async def run(self) -> int:
        report: Report | None = None
        aborted = False
        with self._logging():
            try:
                async with contextlib.AsyncExitStack() as stack:
                    if self._interactive:
                        self._live = stack.enter_context(self._live_view())
                    try:
                        report = await self._run(stack)
                    except Aborted:
                        aborted = True
                        report = self._report(settled=False) if self._observer else None
                    self._set_phase("stopping", "stopping the bot and the simulators…")
            finally:
                self._live = None
        if report is None:
            print("The demo was stopped before it started.", file=sys.stderr)
            return 130
        if self.options.json:
            print(report.json_line(), file=self._out, flush=True)
        else:
            self._console.print(summary(report))
        return 130 if aborted else 0

    async def _run(self, stack: contextlib.AsyncExitStack) -> Report:
        """Everything started here is stopped by `stack`, whichever way this ends."""
        stage = await self._start(stack)
        await self._connect_people(stage, stack)
        if self._call_types is not None:
            self._note = "wording by call type: an external and an internal call…"
            self._call_types_shown = await self._interrupts.guard(
                show_call_types(
                    self._call_types,
                    stage.actors,
                    rc=stage.rc,
                    slack=stage.slack,
                    note=stage.observer.note,
                )
            )
        workload = Workload(
            stage.rc, stage.slack, stage.actors, stage.observer, self._rng, self._call_debounce
        )
        self._workload_started = time.monotonic()
        self._set_phase("running", "Ctrl-C ends the demo and prints a summary.")
        until = asyncio.Event()
        timer = asyncio.create_task(self._stop_when_due(until))
        try:
            await self._interrupts.guard(workload.play(until))
        finally:
            await _cancel(timer)
        workload.finish()
        self._workload_stopped = time.monotonic()
        self._set_phase("settling", "calls ended; waiting for the last writes (Ctrl-C skips)")
        stage.observer.note("The day is over: every call ended; the last writes land now.", "bold")
        settled = await self._interrupts.guard(self._settle(stage))
        return self._report(settled=settled)

    async def _start(self, stack: contextlib.AsyncExitStack) -> Stage:
        """Both simulators, then the bot exactly as `rcstatus-bot run` would start against them."""
        guard = self._interrupts.guard
        company = build_company(self.options.users, self.options.seed)
        self._call_types = cast_for(company)
        scale = TimeScale(self.options.time_scale)
        port = _free_port()
        app_url = f"http://127.0.0.1:{port}"
        rc = RingCentralSimulator(company, time_scale=scale, **self.options.rc_switches)
        slack = SlackSimulator(company, time_scale=scale, app_url=app_url)
        await guard(rc.start())
        stack.push_async_callback(rc.stop)
        await guard(slack.start())
        stack.push_async_callback(slack.stop)

        settings = self._settings(rc, slack, app_url, scale, port)
        self._call_debounce = settings.call_debounce_seconds
        bot = await guard(Bot.create(settings))
        stack.push_async_callback(bot.stop)
        try:
            await guard(bot.start())
        except OSError as exc:
            raise BotError(f"cannot start the bot on port {port}: {exc.strerror}") from exc
        await guard(asyncio.wait_for(bot.wait_ready(), SNAPSHOT_DEADLINE))

        actors = cast(company, slack)
        observer = self._observer = Observer(rc, slack, actors, bot.pending_writes)
        receiver = await guard(self._receive_webhooks(stack, bot, observer, actors, app_url))
        # As an operator would (rcstatus-bot api-key create --scope metrics:read).
        _, metrics_key = await guard(
            ApiKeys(bot.store).create("demo-metrics", [Scope.METRICS_READ.value])
        )
        scrape = f"Metrics: curl -H 'Authorization: Bearer {metrics_key}' {app_url}/metrics"
        observer.note(scrape, "bold")
        if self._live is None and not self.options.json:
            self._console.print(scrape, highlight=False, soft_wrap=True)
        refresher = asyncio.create_task(self._refresh(observer))
        stack.push_async_callback(_cancel, refresher)
        return Stage(rc, slack, bot, scale, actors, observer, receiver)

    async def _receive_webhooks(
        self,
        stack: contextlib.AsyncExitStack,
        bot: Bot,
        observer: Observer,
        actors: list[Actor],
        app_url: str,
    ) -> DemoReceiver:
        """A local receiver, registered through the API as a user's own system would be."""
        names = {actor.slack_id: actor.name for actor in actors}
        receiver = self._receiver = DemoReceiver(
            note=observer.note, names=lambda user_id: names.get(user_id, user_id)
        )
        url = await receiver.start()
        stack.push_async_callback(receiver.stop)
        webhook_id = await receiver.register(bot.store, app_url, url)
        observer.note(f"A local webhook receiver is registered ({webhook_id}).", "bold")
        return receiver

    async def _connect_people(self, stage: Stage, stack: contextlib.AsyncExitStack) -> None:
        """A few never connect, a few keep a status of their own, the rest connect. Slack lets
        an app redeem about 100 OAuth codes a minute: a window's worth connect before the day
        starts and the rest during it, as an office rolling the app out would."""
        # The opening act's two connect and keep no status of their own; the rest are cast.
        showing = {id(p) for p in self._call_types.people()} if self._call_types else set()
        opening = [actor for actor in stage.actors if id(actor.person) in showing]
        others = [actor for actor in stage.actors if id(actor.person) not in showing]
        joining = opening + cast_roles(stage.slack, others, self._rng)
        keeping = sum(actor.manual is not None for actor in stage.actors)
        stage.observer.note(
            f"{len(stage.actors) - len(joining)} of {len(stage.actors)} people never connect; "
            f"{keeping} keep a status of their own.",
            "bold",
        )
        self._note = "people connect their Slack status (OAuth)…"
        pace = Pace(CONNECTS_PER_WINDOW, stage.scale.seconds(60) * 1.05)
        first, later = joining[:CONNECTS_PER_WINDOW], joining[CONNECTS_PER_WINDOW:]
        await self._interrupts.guard(self._connect(stage, first, pace))
        if later:
            connecting = asyncio.create_task(self._connect(stage, later, pace))
            stack.push_async_callback(_cancel, connecting)

    def _settings(
        self,
        rc: RingCentralSimulator,
        slack: SlackSimulator,
        app_url: str,
        scale: TimeScale,
        port: int,
    ) -> Settings:
        # Imported here because bot.cli imports this module to offer `demo`.
        from bot.cli import simulator_env

        env = simulator_env(rc, slack, app_url=app_url, time_scale=scale)
        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{self._workdir / 'rcstatus-demo.db'}"
        env["PORT"] = str(port)
        env["PUBLIC_URL"] = app_url
        if self._call_types is not None:
            env["RC_DETAILED_EXTENSIONS"] = self._call_types.detailed_extensions
        # Only these settings, never the user's .env: the demo needs no configuration.
        return Settings.from_env(env, env_file=None)

    async def _connect(self, stage: Stage, people: list[Actor], pace: Pace) -> None:
        """Each person runs the real OAuth flow (Slack's page, the bot's redirect), paced."""
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
        observer = stage.observer

        async def connect(actor: Actor) -> None:
            async with limit:
                await pace.wait()
                outcome = await stage.slack.authorize(actor.slack_id)
            actor.connected = bool(outcome.get("ok"))
            if not actor.connected:
                observer.note(f"{actor.name} could not connect: {outcome.get('error')}", "yellow")

        async with asyncio.TaskGroup() as group:
            for actor in people:
                group.create_task(connect(actor))
        connected = sum(actor.connected for actor in people)
        observer.note(f"{connected} people connected through Slack's OAuth page", "bold")

    async def _stop_when_due(self, until: asyncio.Event) -> None:
        seconds = self.options.seconds
        if seconds is None:
            await self._interrupts.stop.wait()
        else:
            await self._interrupts.sleep_unless_stopped(seconds)
        until.set()

    async def _settle(self, stage: Stage) -> bool:
        """Wait (with a deadline) until the bot heard every hang-up, sent its last writes and the
        statuses it left to their own expiration lapsed. False if the deadline came first."""
        deadline = time.monotonic() + SETTLE_DEADLINE
        bot, actors = stage.bot, stage.actors

        def availability_of(extension_id: int) -> Availability | None:
            known = bot.presence(str(extension_id))
            return None if known is None else known.availability

        quiet = (Availability.ON_CALL, Availability.RINGING, Availability.IN_MEETING)

        def heard_everything() -> bool:
            return all(availability_of(actor.extension_id) not in quiet for actor in actors)

        settle = max(1.0, stage.scale.seconds(SETTLE_SIMULATED))
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            now = time.monotonic()
            if heard_everything() and bot.pending_writes() == 0:
                quiet_since = quiet_since or now
                if now - quiet_since >= settle:
                    return True
            else:
                quiet_since = None
            await asyncio.sleep(TICK)
        return False

    def _report(self, *, settled: bool) -> Report:
        observer = self._observer
        assert observer is not None
        observer.poll()
        mismatches, stuck, problems = observer.end_check()
        ended = self._workload_stopped or time.monotonic()
        began = self._workload_started or ended
        receiver = self._receiver
        return Report(
            users=self.options.users,
            presence_events=observer.presence_events,
            status_writes=observer.status_writes,
            restores=observer.restores,
            dms_sent=observer.counters().dms_sent,
            commands=observer.commands,
            unanswered=observer.commands_unanswered,
            slack_429=observer.slack_429(),
            mismatches_at_end=mismatches,
            stuck_statuses=stuck,
            latency=Latency.of(observer.latencies),
            ran_for=ended - began,
            time_scale=self.options.time_scale,
            call_debounce=self._call_debounce,
            checked_people=len(observer.checked()),
            settled=settled,
            problems=problems,
            webhooks_delivered=receiver.delivered if receiver else 0,
            webhook_latency=Latency.of(list(receiver.latencies) if receiver else []),
            webhooks_refused=receiver.refused if receiver else 0,
            call_types=tuple(self._call_types_shown),
        )

    # -- the screen ---------------------------------------------------------------------------

    def note(self, text: str, style: str = "") -> None:
        """A line in the event list, once there is one."""
        if self._observer is not None:
            self._observer.note(text, style)

    def _set_phase(self, phase: Phase, note: str) -> None:
        self._phase = phase
        self._note = note
        self._plain_at = -math.inf
        self._draw()

    async def _refresh(self, observer: Observer) -> None:
        while True:
            observer.poll()
            self._draw()
            await asyncio.sleep(REFRESH)

    def _draw(self) -> None:
        if self._live is not None:
            self._live.update(LiveView(self._snapshot()), refresh=True)
        elif not self.options.json and time.monotonic() - self._plain_at >= PLAIN_EVERY:
            self._plain_at = time.monotonic()
            self._console.print(plain_line(self._snapshot()), highlight=False, soft_wrap=True)

    def _snapshot(self) -> Snapshot:
        observer = self._observer
        began = self._workload_started
        return Snapshot(
            users=self.options.users,
            time_scale=self.options.time_scale,
            phase=self._phase,
            note=self._note,
            elapsed=0.0 if began is None else time.monotonic() - began,
            seconds=self.options.seconds,
            rows=observer.rows() if observer else [],
            feed=list(observer.feed) if observer else [],
            counters=self._counters(),
        )

    def _counters(self) -> Counters:
        if self._observer is None:
            return Counters()
        counters = self._observer.counters()
        receiver = self._receiver
        if receiver is None:
            return counters
        return dataclasses.replace(
            counters,
            webhooks_delivered=receiver.delivered,
            webhook_p95_ms=Latency.of(list(receiver.latencies)).p95,
        )

    @contextlib.contextmanager
    def _live_view(self) -> Iterator[Live]:
        live = Live(
            LiveView(self._snapshot()),
            console=self._console,
            auto_refresh=False,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        with live:
            yield live

    @contextlib.contextmanager
    def _logging(self) -> Iterator[None]:
        """Warnings go to the live view's event list, or to stderr; INFO is not shown."""
        root = logging.getLogger()
        saved_handlers, saved_level = root.handlers[:], root.level
        handler: logging.Handler
        if not self._interactive:
            handler = redacting_handler(sys.stderr, "%(levelname)s %(name)s: %(message)s")
            handler.setLevel(logging.WARNING)
        else:
            handler = _DeferredFeedHandler(self)
        root.handlers[:] = [handler]
        root.setLevel(logging.WARNING)
        try:
            yield
        finally:
            root.handlers[:] = saved_handlers
            root.setLevel(saved_level)


class _DeferredFeedHandler(logging.Handler):
    """Warnings to the demo's event list once there is one (before that, to nowhere visible)."""

    def __init__(self, demo: Demo) -> None:
        super().__init__(logging.WARNING)
        self._demo = demo
        self.addFilter(RedactingFilter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._demo.note(f"{record.levelname.lower()}: {record.getMessage()}", "yellow")
        except Exception:
            self.handleError(record)


async def run_demo(options: DemoOptions, out: TextIO) -> int:
    """`rcstatus-bot demo`: returns the exit status (0, or 130 after a second Ctrl-C)."""
    interrupts = Interrupts(asyncio.get_running_loop())
    interrupts.install()
    try:
        with tempfile.TemporaryDirectory(prefix="rcstatus-demo-") as workdir:
            return await Demo(options, Path(workdir), out, interrupts).run()
    finally:
        interrupts.uninstall()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
