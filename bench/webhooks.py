"""Webhook benchmark: availability change to signed delivery, with and without dead receivers.

The whole bot, as `rcstatus-bot run` starts it, runs alone in the measuring process. The
simulators and the load generator run in one child process, the receivers (and the gate's
clients) in another, so neither's CPU counts as the bot's. Calls are placed and ended through
the RingCentral simulator at a steady rate; every change is fanned out to healthy receivers that
verify each signature and note when it arrived. The same load runs twice in the same bot: once
to the healthy receivers alone (the baseline), once with two dead ones added, one refusing
connections and one accepting them and never answering. Then a thousand gate requests are held
open at once and released by ending calls."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import socket
import tempfile
import time
import traceback
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import aiohttp
import psutil  # type: ignore[import-untyped]
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bench.common import (
    RESULTS_DIR,
    Child,
    child,
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
from bench.latency import match_writes
from bot.api.keys import ApiKeys, Scope
from bot.app import Bot
from bot.cli import simulator_env
from bot.config import Settings
from bot.presence import Availability
from bot.sim.company import build_company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral import RingCentralSimulator
from bot.sim.slack import SlackSimulator

POSTGRES_SERVER: Final = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DATABASES: Final = ("sqlite", "postgres")
SETUP_TIMEOUT: Final = 300.0
SAMPLE_EVERY: Final = 1.0
KEPT_UP: Final = 5.0
"""Seconds of deliveries the backlog may reach in the baseline for the bot to count as keeping
up with the load; past it, latency is mostly time spent queueing."""
API_BUDGET: Final = 1_000_000
PHASES: Final = {"A": "without_dead", "B": "with_dead"}
"""The phases `--order` names: the healthy receivers alone, and with the dead ones."""
"""Requests a minute per key: the gate phase opens a thousand requests with one key."""
PAGE: Final = 200


# ------------------------------------------------------------------ child 1: simulators, load


@dataclass(frozen=True, slots=True)
class SimConfig:
    people: int
    seed: int
    scale: float
    app_port: int
    event_log: int


def simulators_main(conn: Connection, config: SimConfig) -> None:
    """Both simulators and the load generator, driven over `conn`."""
    serve_child(conn, _serve_simulators, config)


async def _serve_simulators(conn: Connection, config: SimConfig) -> None:
    company = build_company(config.people, seed=config.seed)
    scale = TimeScale(config.scale)
    app_url = f"http://127.0.0.1:{config.app_port}"
    rc = RingCentralSimulator(company, time_scale=scale, event_log_size=config.event_log)
    slack = SlackSimulator(company, time_scale=scale, app_url=app_url)
    async with rc, slack:
        conn.send(("ready", simulator_env(rc, slack, app_url=app_url, time_scale=scale)))
        load = Load(rc)
        while True:
            message = await receive(conn, within=24 * 3600.0)
            try:
                kind, *args = message
                if kind == "stop":
                    return
                if kind == "people":
                    load.take(args[0], gate=args[1])
                    conn.send(("ok", None))
                elif kind == "mark":
                    load.mark()
                    conn.send(("ok", None))
                elif kind == "drive":
                    conn.send(("driven", await load.drive(*args)))
                elif kind == "events":
                    conn.send(("events", load.events_since_mark()))
                elif kind == "hold":
                    conn.send(("held", load.hold()))
                elif kind == "release":
                    conn.send(("released", load.release()))
                else:
                    raise ValueError(f"unknown command {kind!r}")
            except Exception:
                conn.send(("error", traceback.format_exc()))


class Load:
    """Places and ends calls at a steady event rate; holds calls for the gate phase."""

    def __init__(self, rc: RingCentralSimulator) -> None:
        self._rc = rc
        self._user_of: dict[int, str] = {}
        self._idle: deque[int] = deque()
        self._gate: list[int] = []
        self._held: list[tuple[int, str]] = []
        self._cursor = 0

    def take(self, load: list[tuple[str, int]], *, gate: list[tuple[str, int]]) -> None:
        for user_id, extension_id in (*load, *gate):
            self._user_of[extension_id] = user_id
        self._idle.extend(extension_id for _, extension_id in load)
        self._gate = [extension_id for _, extension_id in gate]

    def mark(self) -> None:
        logged = self._rc.events(after=self._cursor)
        if logged:
            self._cursor = int(logged[-1]["id"])

    def events_since_mark(self) -> list[tuple[str, float, bool]]:
        """(user, wall time, is a call) for each call start and end since the mark."""
        picked = []
        for event in self._rc.events(after=self._cursor):
            user = self._user_of.get(int(event["extension_id"]))
            state = event["fields"].get("telephonyStatus")
            if user is not None and state is not None:
                picked.append((user, float(event["time"]), state != "NoCall"))
        return picked

    async def drive(self, rate: float, duration: float, call_seconds: float) -> dict[str, Any]:
        """Event slots every 1/rate s: end the oldest call once it has lasted `call_seconds`,
        else start one; calls still up when the time is over end at the same rate."""
        slots = max(1, round(rate * duration))
        active: deque[tuple[int, str, float]] = deque()
        starts = ends = 0
        began = time.monotonic()
        index = 0
        while index < slots or active:
            delay = began + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif index % 25 == 0:
                await asyncio.sleep(0)  # behind schedule: the simulators must still serve
            now = time.monotonic()
            due = bool(active) and now - active[0][2] >= call_seconds
            if active and (due or index >= slots or not self._idle):
                extension_id, call_id, _ = active.popleft()
                self._rc.call(extension_id, "ended", call_id=call_id)
                self._idle.append(extension_id)
                ends += 1
            else:
                extension_id = self._idle.popleft()
                active.append((extension_id, self._rc.call(extension_id, "connected"), now))
                starts += 1
            index += 1
        took = time.monotonic() - began
        return {
            "target_rate_per_second": rate,
            "achieved_rate_per_second": round((starts + ends - 1) / took, 1) if took else None,
            "sending_seconds": round(took, 2),
            "events": starts + ends,
            "call_starts": starts,
            "call_ends": ends,
        }

    def hold(self) -> int:
        """Everyone set aside for the gate starts a call."""
        self._held = [(ext, self._rc.call(ext, "connected")) for ext in self._gate]
        return len(self._held)

    def release(self) -> dict[str, float]:
        """Their calls end at once: when each ended (wall time), by user."""
        ended = {}
        for extension_id, call_id in self._held:
            self._rc.call(extension_id, "ended", call_id=call_id)
            ended[self._user_of[extension_id]] = time.time()
        self._held = []
        return ended


# ------------------------------------------------------------------ child 2: receivers, gate


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    healthy: int
    verify_every: int


def receivers_main(conn: Connection, config: ReceiverConfig) -> None:
    """The webhook receivers and the gate's clients, driven over `conn`."""
    serve_child(conn, _serve_receivers, config)


@dataclass(slots=True)
class Arrivals:
    """What one healthy receiver got: (user, wall time, on a call) per delivery."""

    deliveries: list[tuple[str, float, bool]] = field(default_factory=list)
    ids: Counter[str] = field(default_factory=Counter)
    verified: int = 0
    bad_signatures: int = 0


class Receivers:
    """Healthy receivers on their own ports, one that hangs, one port that refuses."""

    def __init__(self, config: ReceiverConfig) -> None:
        self._config = config
        self._verifiers: dict[int, Webhook] = {}
        self._arrivals = [Arrivals() for _ in range(config.healthy)]
        self._runners: list[web.AppRunner] = []
        self._hanging: asyncio.Server | None = None
        self._hung: set[asyncio.StreamWriter] = set()
        self.hang_connections = 0
        self._refusing = socket.socket()
        self._gate: asyncio.Task[list[tuple[str, int, str | None, float]]] | None = None
        self._cpu_mark = 0.0
        self._wall_mark = time.monotonic()

    async def start(self) -> dict[str, Any]:
        urls = []
        for index in range(self._config.healthy):
            app = web.Application()
            app.router.add_post("/hook", self._handler(index))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._runners.append(runner)
            port = runner.addresses[0][1]
            urls.append(f"http://127.0.0.1:{port}/hook")
        self._hanging = await asyncio.start_server(self._hang, "127.0.0.1", 0)
        hang_port = self._hanging.sockets[0].getsockname()[1]
        # Bound and never listening: every connection is refused, and nobody else takes the port.
        self._refusing.bind(("127.0.0.1", 0))
        refuse_port = self._refusing.getsockname()[1]
        return {
            "healthy": urls,
            "hanging": f"http://127.0.0.1:{hang_port}/hook",
            "refusing": f"http://127.0.0.1:{refuse_port}/hook",
        }

    async def stop(self) -> None:
        for writer in list(self._hung):
            writer.close()
        if self._hanging is not None:
            self._hanging.close()
        for runner in self._runners:
            await runner.cleanup()
        self._refusing.close()

    def secrets(self, secrets: dict[int, str]) -> None:
        self._verifiers = {index: Webhook(secret) for index, secret in secrets.items()}
        self._arrivals = [Arrivals() for _ in range(self._config.healthy)]

    def _handler(self, index: int) -> Any:
        every = self._config.verify_every

        async def handle(request: web.Request) -> web.Response:
            at = time.time()
            body = await request.read()
            arrivals = self._arrivals[index]
            verifier = self._verifiers.get(index)
            if verifier is None:
                return web.Response(status=503)
            message_id = request.headers.get("webhook-id", "")
            if (len(arrivals.deliveries) + arrivals.bad_signatures) % every == 0:
                try:
                    payload = verifier.verify(body, dict(request.headers))
                except WebhookVerificationError:
                    arrivals.bad_signatures += 1
                    return web.Response(status=400)
                arrivals.verified += 1
            else:
                payload = json.loads(body)
            data = payload["data"]
            arrivals.ids[message_id] += 1
            arrivals.deliveries.append(
                (data["slack_user_id"], at, data["availability"] == Availability.ON_CALL.value)
            )
            return web.Response(status=204)

        return handle

    async def _hang(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Accept, read whatever comes, never answer; the sender gives up (its timeout)."""
        self.hang_connections += 1
        self._hung.add(writer)
        try:
            while await reader.read(65536):
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            self._hung.discard(writer)
            writer.close()

    def collect(self) -> dict[str, Any]:
        cpu = sum(psutil.Process().cpu_times()[:2])
        wall = time.monotonic()
        share = 100 * (cpu - self._cpu_mark) / max(1e-9, wall - self._wall_mark)
        self._cpu_mark, self._wall_mark = cpu, wall
        return {
            "endpoints": [
                {
                    "deliveries": a.deliveries,
                    "duplicates": sum(n - 1 for n in a.ids.values() if n > 1),
                    "verified": a.verified,
                    "bad_signatures": a.bad_signatures,
                }
                for a in self._arrivals
            ],
            "hang_connections": self.hang_connections,
            "cpu_percent_of_one_core": round(share, 1),
        }

    def mark_cpu(self) -> None:
        self._cpu_mark = sum(psutil.Process().cpu_times()[:2])
        self._wall_mark = time.monotonic()

    def open_gate(self, base_url: str, key: str, users: list[str], timeout: float) -> None:
        self._gate = asyncio.create_task(self._hold(base_url, key, users, timeout))

    async def _hold(
        self, base_url: str, key: str, users: list[str], wait: float
    ) -> list[tuple[str, int, str | None, float]]:
        connector = aiohttp.TCPConnector(limit=0)
        headers = {"Authorization": f"Bearer {key}"}
        client_timeout = aiohttp.ClientTimeout(total=wait + 30)
        async with aiohttp.ClientSession(
            connector=connector, headers=headers, timeout=client_timeout
        ) as session:

            async def one(user: str) -> tuple[str, int, str | None, float]:
                url = f"{base_url}/api/v1/people/{user}"
                params = {"wait": "available", "timeout": f"{wait:g}"}
                try:
                    async with session.get(url, params=params) as response:
                        body = await response.json()
                        return (user, response.status, body.get("availability"), time.time())
                except (aiohttp.ClientError, TimeoutError) as exc:
                    return (user, 0, type(exc).__name__, time.time())

            return list(await asyncio.gather(*(one(user) for user in users)))

    async def gate_result(self) -> list[tuple[str, int, str | None, float]]:
        task, self._gate = self._gate, None
        if task is None:
            raise RuntimeError("no gate requests were opened")
        return await task


async def _serve_receivers(conn: Connection, config: ReceiverConfig) -> None:
    receivers = Receivers(config)
    try:
        conn.send(("ready", await receivers.start()))
        while True:
            message = await receive(conn, within=24 * 3600.0)
            try:
                kind, *args = message
                if kind == "stop":
                    return
                if kind == "secrets":
                    receivers.secrets(args[0])
                    receivers.mark_cpu()
                    conn.send(("ok", None))
                elif kind == "collect":
                    conn.send(("collected", receivers.collect()))
                elif kind == "gate":
                    receivers.open_gate(*args)
                    conn.send(("ok", None))
                elif kind == "gate_result":
                    conn.send(("gate_result", await receivers.gate_result()))
                else:
                    raise ValueError(f"unknown command {kind!r}")
            except Exception:
                conn.send(("error", traceback.format_exc()))
    finally:
        await receivers.stop()


# ------------------------------------------------------------------ the parent: the bot


@contextlib.asynccontextmanager
async def database(kind: str, directory: Path) -> AsyncIterator[str]:
    """A fresh database for one run: a SQLite file, or a PostgreSQL database dropped after."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'bot.db'}"
        return
    name = f"rcstatus_bench_webhooks_{int(time.time())}"
    server = create_async_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    try:
        async with server.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield POSTGRES_SERVER.rsplit("/", 1)[0] + "/" + name
        finally:
            async with server.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await server.dispose()


class Api:
    """The bot's API as a user calls it, with one key."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, key: str) -> None:
        self._session = session
        self._base = base_url + "/api/v1"
        self._headers = {"Authorization": f"Bearer {key}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self._session.request(
            method, self._base + path, headers=self._headers, **kwargs
        ) as response:
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {await response.text()}")
            return await response.json() if response.status != 204 else None

    async def available_people(self) -> list[tuple[str, int]]:
        """Everyone the API shows as available, with their extension id, page by page."""
        found: list[tuple[str, int]] = []
        cursor = ""
        while True:
            params = {"availability": "available", "limit": str(PAGE)}
            if cursor:
                params["cursor"] = cursor
            page = await self.call("GET", "/people", params=params)
            found += [
                (p["slack_user_id"], int(p["extension_id"]))
                for p in page["people"]
                if p["extension_id"] is not None
            ]
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return found


@dataclass(frozen=True, slots=True)
class Plan:
    rate: float
    duration: float
    call_seconds: float
    deadline: float


class Sampler:
    """Every second: changes the hub told, deliveries made, RSS; for the backlog over time."""

    def __init__(self, bot: Bot, healthy: int) -> None:
        self._bot = bot
        self._healthy = healthy
        self._process = psutil.Process()
        stats = bot.stats()
        self._published = stats.coordinator.published
        self._delivered = stats.webhooks.delivered
        self._began = time.monotonic()
        self.series: list[dict[str, float]] = []
        self.peak_rss = 0

    def told(self) -> int:
        return self._bot.stats().coordinator.published - self._published

    def delivered(self) -> int:
        return self._bot.stats().webhooks.delivered - self._delivered

    def backlog(self) -> int:
        return self.told() * self._healthy - self.delivered()

    async def run(self) -> None:
        while True:
            rss = self._process.memory_info().rss
            self.peak_rss = max(self.peak_rss, rss)
            self.series.append(
                {
                    "t": round(time.monotonic() - self._began, 1),
                    "told": self.told(),
                    "delivered": self.delivered(),
                    "backlog": self.backlog(),
                }
            )
            await asyncio.sleep(SAMPLE_EVERY)


async def measure_phase(
    bot: Bot,
    api: Api,
    sims: Child,
    receivers: Child,
    urls: dict[str, Any],
    plan: Plan,
    *,
    dead: bool,
) -> dict[str, Any]:
    """Register the endpoints through the API, drive the load, wait for every healthy delivery
    (or the deadline), read what the receivers got, then delete the endpoints."""
    healthy: list[str] = urls["healthy"]
    targets = [*healthy, *([urls["refusing"], urls["hanging"]] if dead else [])]
    created = [
        await api.call("POST", "/webhooks", json={"url": url, "description": f"bench {i}"})
        for i, url in enumerate(targets)
    ]
    await receivers.ask(
        ("secrets", {i: hook["secret"] for i, hook in enumerate(created[: len(healthy)])}),
        "ok",
        within=30,
    )
    await sims.ask(("mark",), "ok", within=30)
    process = psutil.Process()
    failed_before = bot.stats().webhooks.failed_attempts
    sampler = Sampler(bot, len(healthy))
    sampling = asyncio.create_task(sampler.run())
    try:
        cpu0, t0 = process.cpu_times(), time.monotonic()
        driven = await sims.ask(
            ("drive", plan.rate, plan.duration, plan.call_seconds),
            "driven",
            within=plan.duration * 4 + plan.call_seconds + 120,
        )
        cpu1, t1 = process.cpu_times(), time.monotonic()
        backlog_at_sent = sampler.backlog()
        rss_at_sent = process.memory_info().rss
        events = driven["events"]
        drained: float | None = None
        with contextlib.suppress(TimeoutError):
            await wait_until(
                lambda: sampler.told() >= events and sampler.backlog() <= 0,
                within=plan.deadline,
                interval=0.05,
                what="every healthy delivery",
            )
            drained = time.monotonic() - t1
        cpu2, t2 = process.cpu_times(), time.monotonic()
        backlog_at_end = sampler.backlog()
    finally:
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)
    stats = bot.stats().webhooks
    logged: list[tuple[str, float, bool]] = await sims.ask(("events",), "events", within=60)
    got = await receivers.ask(("collect",), "collected", within=120)
    for hook in created:
        await api.call("DELETE", f"/webhooks/{hook['id']}")
    samples: list[float] = []
    missing = duplicates = verified = bad = 0
    last_arrival = 0.0
    for endpoint in got["endpoints"]:
        matched = match_writes(logged, endpoint["deliveries"])
        samples += matched.start + matched.end
        missing += matched.missing
        last_arrival = max(last_arrival, matched.last_answer_at)
        duplicates += endpoint["duplicates"]
        verified += endpoint["verified"]
        bad += endpoint["bad_signatures"]
    first_event = min((at for _, at, _ in logged), default=0.0)
    span = last_arrival - first_event
    cpu_sending = sum(cpu1[:2]) - sum(cpu0[:2])
    cpu_draining = sum(cpu2[:2]) - sum(cpu1[:2])
    result = {
        **driven,
        "endpoints_healthy": len(healthy),
        "endpoints_dead": len(targets) - len(healthy),
        "events_logged": len(logged),
        "bot_transitions": sampler.told(),
        "deliveries_expected": len(logged) * len(healthy),
        "deliveries_matched": len(samples),
        "deliveries_missing_at_deadline": missing,
        "duplicate_webhook_ids": duplicates,
        "signatures_verified": verified,
        "bad_signatures": bad,
        **_percentiles("", samples),
        "delivered_per_second_until_last": round(len(samples) / span, 1) if span > 0 else None,
        "backlog_when_sending_stopped": backlog_at_sent,
        "backlog_at_end": backlog_at_end,
        "backlog_max": max((s["backlog"] for s in sampler.series), default=0),
        "drained_after_sending_stopped_seconds": None if drained is None else round(drained, 2),
        "backlog_series": sampler.series[:: max(1, len(sampler.series) // 60)],
        "bot_failed_attempts": stats.failed_attempts - failed_before,
        "bot_reported_latency_ms": {
            "p50": stats.latency_p50_ms,
            "p95": stats.latency_p95_ms,
            "p99": stats.latency_p99_ms,
            "over": "the bot's last 10,000 deliveries, from recording the change to the 2xx",
        },
        "hang_connections_accepted": got["hang_connections"],
        "bot_cpu_percent_of_one_core_sending": round(100 * cpu_sending / (t1 - t0), 1),
        "bot_cpu_percent_of_one_core_draining": round(100 * cpu_draining / max(1e-9, t2 - t1), 1),
        "bot_rss_mib": round(rss_at_sent / 2**20, 1),
        "bot_rss_peak_mib": round(max(sampler.peak_rss, rss_at_sent) / 2**20, 1),
        "receivers_cpu_percent_of_one_core": got["cpu_percent_of_one_core"],
        "_samples": samples,
    }
    progress(
        f"webhooks: {'with' if dead else 'without'} dead endpoints: "
        f"{len(samples):,}/{result['deliveries_expected']:,} delivered, p50/p95/p99 "
        f"{_triple(result)} ms, backlog max {result['backlog_max']:,}, bot CPU "
        f"{result['bot_cpu_percent_of_one_core_sending']}%"
    )
    return result


async def measure_gate(
    bot: Bot,
    sims: Child,
    receivers: Child,
    base_url: str,
    key: str,
    gate_people: list[tuple[str, int]],
    hold_seconds: float,
) -> dict[str, Any]:
    """Everyone set aside starts a call; a gate request each is held open; the calls end."""
    process = psutil.Process()
    users = [user for user, _ in gate_people]
    rss_before = process.memory_info().rss
    await sims.ask(("hold",), "held", within=60)
    await wait_until(
        lambda: all(bot.availability(user) is Availability.ON_CALL for user in users),
        within=60,
        what="the gate's people on a call",
    )
    rss_calls = process.memory_info().rss
    timeout = hold_seconds + 30
    opened = time.monotonic()
    await receivers.ask(("gate", base_url, key, users, timeout), "ok", within=30)
    await wait_until(
        lambda: bot.stats().gate_waiting >= len(users),
        within=60,
        what=f"{len(users)} requests held at the gate",
    )
    all_held = time.monotonic() - opened
    cpu0, t0 = process.cpu_times(), time.monotonic()
    rss_held = process.memory_info().rss
    peak = rss_held
    while time.monotonic() - t0 < hold_seconds:
        await asyncio.sleep(0.25)
        peak = max(peak, process.memory_info().rss)
    cpu1, t1 = process.cpu_times(), time.monotonic()
    still_held = bot.stats().gate_waiting
    ended: dict[str, float] = await sims.ask(("release",), "released", within=60)
    answers = await receivers.ask(("gate_result",), "gate_result", within=timeout + 60)
    waits = [at - ended[user] for user, status, _, at in answers if status == 200]
    available = sum(1 for _, status, availability, _ in answers if availability == "available")
    result = {
        "requests": len(users),
        "held_at_once": still_held,
        "all_held_after_seconds": round(all_held, 2),
        "hold_seconds": hold_seconds,
        "bot_cpu_percent_of_one_core_while_held": round(
            100 * (sum(cpu1[:2]) - sum(cpu0[:2])) / (t1 - t0), 1
        ),
        "bot_rss_mib_before": round(rss_calls / 2**20, 1),
        "bot_rss_mib_held": round(rss_held / 2**20, 1),
        "bot_rss_mib_peak_held": round(peak / 2**20, 1),
        "bot_rss_mib_before_calls": round(rss_before / 2**20, 1),
        "rss_per_held_request_kib": round((rss_held - rss_calls) / len(users) / 1024, 1),
        "answered_200": sum(1 for _, status, _, _ in answers if status == 200),
        "answered_available": available,
        "answer_after_call_ended": {
            k.removesuffix("_ms"): v for k, v in _percentiles("", waits).items()
        },
    }
    progress(
        f"webhooks: gate: {still_held} held at once, bot CPU "
        f"{result['bot_cpu_percent_of_one_core_while_held']}% while held, RSS "
        f"{result['bot_rss_mib_before']} -> {result['bot_rss_mib_held']} MiB; {available} "
        "answered available"
    )
    return result


async def run_one(
    kind: str,
    *,
    people: int,
    seed: int,
    scale: float,
    plan: Plan,
    healthy: int,
    gate: int,
    hold_seconds: float,
    verify_every: int,
    order: str = "AB",
    profile: Path | None = None,
) -> dict[str, Any]:
    """One database: fresh children, a fresh bot, both phases and the gate."""
    event_log = max(20_000, int(plan.rate * (plan.duration + plan.call_seconds) * 3) + gate * 4)
    app_port = free_port()
    setup_started = time.monotonic()
    progress(f"webhooks: {kind}: starting the simulators with {people:,} people")
    with (
        child(simulators_main, SimConfig(people, seed, scale, app_port, event_log), "sims") as sims,
        child(receivers_main, ReceiverConfig(healthy, verify_every), "receivers") as receivers,
        tempfile.TemporaryDirectory() as tmp,
    ):
        env = await sims.expect("ready", within=SETUP_TIMEOUT)
        urls = await receivers.expect("ready", within=SETUP_TIMEOUT)
        async with database(kind, Path(tmp)) as url:
            env = {**env, "DATABASE_URL": url, "API_REQUESTS_PER_MINUTE": str(API_BUDGET)}
            bot = await Bot.create(Settings.from_env(env, env_file=None))
            try:
                await bot.start()
                await asyncio.wait_for(bot.wait_ready(), SETUP_TIMEOUT)
                _, key = await ApiKeys(bot.store).create(
                    "bench", [Scope.AVAILABILITY_READ.value, Scope.WEBHOOKS_WRITE.value]
                )
                base_url = f"http://127.0.0.1:{app_port}"
                async with aiohttp.ClientSession() as session:
                    api = Api(session, base_url, key)
                    available = await api.available_people()
                    needed = gate + int(plan.rate * plan.call_seconds * 2) + 10
                    if len(available) < needed:
                        raise RuntimeError(f"{len(available)} people available, {needed} needed")
                    gate_people, load_people = available[:gate], available[gate:]
                    await sims.ask(("people", load_people, gate_people), "ok", within=60)
                    setup = time.monotonic() - setup_started
                    progress(
                        f"webhooks: {kind}: bot up, {len(available):,} available ({setup:.0f} s)"
                    )
                    runs: dict[str, list[dict[str, Any]]] = {}
                    for number, letter in enumerate(order, 1):
                        name = PHASES[letter]
                        progress(
                            f"webhooks: {kind}: {plan.rate:g}/s for {plan.duration:g} s, {name} "
                            f"({number}/{len(order)})"
                        )
                        profiler = cProfile.Profile() if profile else None
                        if profiler is not None:
                            profiler.enable()
                        runs.setdefault(name, []).append(
                            await measure_phase(
                                bot, api, sims, receivers, urls, plan, dead=letter == "B"
                            )
                        )
                        if profiler is not None:
                            profiler.disable()
                            dump = f"{profile}.{kind}.{name}.{number}"
                            profiler.dump_stats(dump)
                            progress(f"webhooks: the bot's profile is in {dump}")
                    phases = {name: _pooled(one) for name, one in runs.items()}
                    held = await measure_gate(
                        bot, sims, receivers, base_url, key, gate_people, hold_seconds
                    )
            finally:
                await bot.stop()
    base, loaded = phases["without_dead"], phases["with_dead"]
    return {
        "database": kind,
        "people_available_at_start": len(available),
        "people_driven": len(load_people),
        "setup_seconds": round(setup, 1),
        "without_dead": base,
        "with_dead": loaded,
        "ratio_with_dead_to_without": {
            p: _ratio(loaded[f"{p}_ms"], base[f"{p}_ms"]) for p in ("p50", "p95", "p99")
        },
        "baseline_kept_up": base["backlog_max"] <= plan.rate * healthy * KEPT_UP,
        "gate": held,
    }


async def run(
    *,
    people: int = 10_000,
    rate: float = 200.0,
    duration: float = 60.0,
    call_seconds: float = 2.0,
    healthy: int = 10,
    gate: int = 1000,
    hold_seconds: float = 10.0,
    deadline: float = 120.0,
    scale: float = 60.0,
    seed: int = 7,
    databases: Sequence[str] = ("sqlite",),
    verify_every: int = 1,
    order: str = "AB",
    profile: Path | None = None,
) -> dict[str, Any]:
    plan = Plan(rate, duration, call_seconds, deadline)
    result: dict[str, Any] = {
        "people": people,
        "rate_per_second": rate,
        "duration_seconds": duration,
        "call_seconds": call_seconds,
        "endpoints_healthy": healthy,
        "endpoints_dead": {"refusing": 1, "hanging": 1},
        "gate_requests": gate,
        "time_scale": scale,
        "deadline_seconds": deadline,
        "databases": list(databases),
        "order": order,
        "processes": (
            "the bot runs alone in the measuring process (bot_* figures: its CPU and RSS); both "
            "simulators and the load generator run in one spawned child, the receivers and the "
            "gate's HTTP clients in another (receivers_cpu_percent_of_one_core); the machine "
            f"has {psutil.cpu_count()} CPUs for all three"
        ),
        "measured": (
            "wall-clock time from the RingCentral simulator logging a presence change (a call "
            "connected or ended) to a healthy receiver having the delivery that says so (its "
            "arrival, before verifying), both on one system clock; each delivery matched to its "
            "change per person and receiver. In between: the WebSocket, the hub, the event log, "
            "the fan-out to each endpoint's outbox, the claim, the signed POST. Deliveries still "
            "missing at the deadline are counted, not timed"
        ),
        "workload": (
            f"event slots at {rate:g}/s for {duration:g} s: each ends the oldest call once it "
            f"has lasted {call_seconds:g} s, else starts one for a free person (only people the "
            "API showed as available at start); each change is one availability.changed event "
            "(available <-> on_call) to every endpoint (no filters). The same load runs first "
            "to the healthy receivers alone, then with one receiver refusing connections and "
            "one accepting them and never answering; the endpoints are registered through the "
            "API before each phase and deleted (with their deliveries) after it"
        ),
        "conditions": {
            "TIME_SCALE": scale,
            "note": (
                f"as in the other benchmarks the simulators run {scale:g}x real time and the "
                "bot's clocks follow, which shortens the retry schedule too: the refusing "
                f"endpoint is retried after {5 / scale:.2f} s, {300 / scale:g} s, "
                f"{1800 / scale:g} s (5 s, 5 min, 30 min at real time), so it costs the bot more "
                "than in production; the hanging one holds each attempt for the full 10 s "
                "timeout, which is not scaled. No user tokens are connected, so the status "
                "writer writes nothing: the webhooks alone are measured"
            ),
            "API_REQUESTS_PER_MINUTE": f"{API_BUDGET} (default 600): the gate phase opens "
            f"{gate} requests with one key",
            "WEBHOOK_ALLOW_PRIVATE_URLS": "true: the receivers are on 127.0.0.1",
            "signatures_verified": "every delivery"
            if verify_every == 1
            else f"one delivery in {verify_every}",
        },
    }
    for kind in databases:
        result[kind] = await run_one(
            kind,
            people=people,
            seed=seed,
            scale=scale,
            plan=plan,
            healthy=healthy,
            gate=gate,
            hold_seconds=hold_seconds,
            verify_every=verify_every,
            order=order,
            profile=profile,
        )
    return result


def _percentiles(prefix: str, samples: list[float]) -> dict[str, float | None]:
    def ms(share: float) -> float | None:
        return round(percentile(samples, share) * 1000, 1) if samples else None

    return {
        f"{prefix}p50_ms": ms(0.50),
        f"{prefix}p95_ms": ms(0.95),
        f"{prefix}p99_ms": ms(0.99),
        f"{prefix}max_ms": round(max(samples) * 1000, 1) if samples else None,
    }


def _pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One phase's figures over its runs: percentiles over every run's deliveries together,
    counts summed, peaks the highest, rates and CPU the mean; each run's own figures too."""
    samples = [sample for run in runs for sample in run.pop("_samples")]
    if len(runs) == 1:
        return runs[0]

    def mean(key: str) -> float | None:
        values = [run[key] for run in runs if run[key] is not None]
        return round(sum(values) / len(values), 1) if values else None

    summed = (
        "events_logged",
        "deliveries_expected",
        "deliveries_matched",
        "deliveries_missing_at_deadline",
        "duplicate_webhook_ids",
        "signatures_verified",
        "bad_signatures",
        "bot_failed_attempts",
    )
    return {
        "endpoints_healthy": runs[0]["endpoints_healthy"],
        "endpoints_dead": runs[0]["endpoints_dead"],
        **{key: sum(run[key] for run in runs) for key in summed},
        **_percentiles("", samples),
        "delivered_per_second_until_last": mean("delivered_per_second_until_last"),
        "backlog_max": max(run["backlog_max"] for run in runs),
        "bot_cpu_percent_of_one_core_sending": mean("bot_cpu_percent_of_one_core_sending"),
        "bot_rss_peak_mib": max(run["bot_rss_peak_mib"] for run in runs),
        "runs": runs,
    }


def _ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return round(value / base, 2)


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else fmt(value, digits)


def _triple(phase: dict[str, Any]) -> str:
    values = [phase["p50_ms"], phase["p95_ms"], phase["p99_ms"]]
    digits = 0 if any(v is not None and v >= 1000 for v in values) else 1
    return "/".join(_num(v, digits) for v in values)


def summarise(result: dict[str, Any]) -> str:
    parts = [
        f"{result['people']:,} people, {result['rate_per_second']:g} changes/s for "
        f"{result['duration_seconds']:g} s to {result['endpoints_healthy']} healthy endpoints"
    ]
    for kind in result["databases"]:
        one = result[kind]
        base, dead, ratio, gate = (
            one["without_dead"],
            one["with_dead"],
            one["ratio_with_dead_to_without"],
            one["gate"],
        )
        late = dead["deliveries_missing_at_deadline"] + base["deliveries_missing_at_deadline"]
        behind = (
            ""
            if one.get("baseline_kept_up", True)
            else f" (even without dead endpoints the bot fell behind, backlog max "
            f"{base['backlog_max']:,}: these latencies are mostly queueing, and the ratio "
            "compares two overloaded runs)"
        )
        parts.append(
            f"{kind}: with 2 dead p50/p95/p99 {_triple(dead)} ms vs {_triple(base)} ms without "
            f"(x{_num(ratio['p50'], 2)}/{_num(ratio['p95'], 2)}/{_num(ratio['p99'], 2)})"
            f"{behind}, "
            f"{_num(dead['delivered_per_second_until_last'], 0)} deliveries/s, backlog max "
            f"{dead['backlog_max']:,}"
            + (f", {late:,} undelivered at the deadline" if late else "")
            + f", bot CPU {_num(dead['bot_cpu_percent_of_one_core_sending'], 0)}%, RSS "
            f"{_num(dead['bot_rss_peak_mib'], 0)} MiB; gate: {gate['held_at_once']:,} held, "
            f"bot CPU {_num(gate['bot_cpu_percent_of_one_core_while_held'], 1)}%, RSS "
            f"{_num(gate['bot_rss_mib_before'], 0)} -> {_num(gate['bot_rss_mib_held'], 0)} MiB, "
            f"answered p95 {_num(gate['answer_after_call_ended']['p95'], 0)} ms after the call "
            "ended"
        )
    return joined(parts)


def main(argv: list[str] | None = None, *, directory: Path = RESULTS_DIR) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0, help="changes a second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--call-seconds", type=float, default=2.0)
    parser.add_argument("--healthy", type=int, default=10, help="healthy endpoints")
    parser.add_argument("--gate", type=int, default=1000, help="gate requests held at once")
    parser.add_argument("--hold-seconds", type=float, default=10.0)
    parser.add_argument(
        "--deadline", type=float, default=120.0, help="seconds after sending for deliveries"
    )
    parser.add_argument("--scale", type=float, default=60.0, help="simulators' time scale")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--verify-every", type=int, default=1, help="verify 1 in N signatures")
    parser.add_argument("--databases", nargs="+", choices=DATABASES, default=["sqlite"])
    parser.add_argument(
        "--order",
        default="AB",
        help="phases in the order run: A without the dead endpoints, B with them; a phase run "
        "more than once is measured over all its runs (ABBA evens out a drift over the run)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="cProfile the bot process in each phase into PROFILE.<database>.<phase>",
    )
    args = parser.parse_args(argv)
    if not args.order or set(args.order) - set(PHASES) or len(set(args.order)) < len(PHASES):
        parser.error("--order: a sequence of A and B with both, such as AB or ABBA")
    result = asyncio.run(
        run(
            people=args.people,
            rate=args.rate,
            duration=args.duration,
            call_seconds=args.call_seconds,
            healthy=args.healthy,
            gate=args.gate,
            hold_seconds=args.hold_seconds,
            deadline=args.deadline,
            scale=args.scale,
            seed=args.seed,
            databases=args.databases,
            verify_every=args.verify_every,
            order=args.order,
            profile=args.profile,
        )
    )
    summary = summarise(result)
    write_result("webhooks", result, summary=summary, directory=directory)
    progress(f"webhooks: {summary}")
    return result


if __name__ == "__main__":
    main()
