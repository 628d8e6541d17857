"""`python -m bench failover`: how soon another replica leads after the leader dies or is stopped,
and what fencing costs the leader's store transactions.

Three `rcstatus-bot run` processes share a private role and schema on PostgreSQL and both
simulators (time scale 1: Slack's and RingCentral's real rate windows; the lease is never
scaled). People are connected and calls start and end throughout, so the leader is working
when it goes. Each run finds the leader, kills it (SIGKILL, or SIGTERM as a rolling deploy
does), and polls the other replicas' `/readyz` until one says it leads under a higher epoch,
then until that one answers 200 with RingCentral's WebSocket connected; the stopped replica
is started again before the next run, so three are always up. Runs are paced to RingCentral's
5 logins and WebSocket tokens a minute (each takeover fetches a token) and jittered against the
lease's period. Then, in this process, on the same database with the replicas stopped: the same
store transactions run outside and inside `fenced(term, lease)` under a lease actually held, in
pairs, which goes first alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import aiohttp
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import RESULTS_DIR, fmt, free_port, joined, percentile, progress, write_result
from bot.cli import simulator_env, write_env_file
from bot.config import Settings
from bot.leader import Lease, fenced
from bot.presence import Presence, PresenceStatus, TelephonyStatus
from bot.sim.company import Person, build_company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral import RingCentralSimulator
from bot.sim.ringcentral.wire import DEFAULT_RATE_LIMITS, RATE_WINDOW_SECONDS
from bot.sim.slack import SlackSimulator
from bot.store.store import Store

POSTGRES_SERVER: Final = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
KINDS: Final = ("kill", "term")
SIGNALS: Final = {"kill": signal.SIGKILL, "term": signal.SIGTERM}
POLL_EVERY: Final = 0.02
"""Seconds between two looks at every replica's /readyz while a takeover is timed."""
PROBE_TIMEOUT: Final = 1.0
START_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 20.0
TEAM: Final = "T_BENCH"
PROFILE_SET: Final = "users.profile.set"
CALL_SECONDS: Final = (10.0, 30.0)
GAP_SECONDS: Final = (5.0, 20.0)
"""Between one call's end and the next on the same line."""
HANDOVER_TARGET: Final = 3.0
"""Seconds from SIGTERM to another replica serving as leader (issue 12)."""
REPO: Final = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ the database


@contextlib.asynccontextmanager
async def private_schema(server_url: str) -> AsyncIterator[str]:
    """A URL logging in as a throwaway role whose tables land in a schema of its own; both are
    dropped afterwards. The same idea as `tests/store_fixtures.py`, which reports a missing
    server through pytest and so cannot serve a benchmark run without it."""
    role = f"rcstatus_bench_{secrets.token_hex(6)}"
    password = secrets.token_hex(12)
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
            await conn.execute(text(f"CREATE SCHEMA {role} AUTHORIZATION {role}"))
            await conn.execute(text(f"ALTER ROLE {role} SET search_path = {role}"))
        try:
            url = make_url(server_url).set(username=role, password=password)
            yield url.render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                # A replica killed mid-transaction may leave a session behind; it blocks DROP ROLE.
                await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"
                    ),
                    {"r": role},
                )
                await conn.execute(text(f"DROP SCHEMA IF EXISTS {role} CASCADE"))
                await conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
    finally:
        await admin.dispose()


# ------------------------------------------------------------------ the replicas


def rcstatus_bot() -> list[str]:
    """The installed script, as an operator starts it."""
    script = Path(sys.executable).with_name("rcstatus-bot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


@dataclass(slots=True)
class Probe:
    status: int | None
    body: dict[str, Any]

    @property
    def leads(self) -> bool:
        return self.body.get("role") == "leader"

    @property
    def epoch(self) -> int:
        return int(self.body.get("epoch") or 0)

    @property
    def serving_as_leader(self) -> bool:
        """Ready (200) as the leader, with RingCentral's WebSocket connected."""
        rc = self.body.get("ringcentral") or {}
        return self.status == 200 and self.leads and rc.get("state") == "connected"


class Replica:
    """One `rcstatus-bot run` process with its own port, env file and log."""

    def __init__(self, name: str, env: dict[str, str], directory: Path) -> None:
        self.name = name
        self.port = int(env["PORT"])
        self.env_file = directory / f"{name}.env"
        self.log = directory / f"{name}.log"
        write_env_file(self.env_file, env)
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *rcstatus_bot(), "run", "--env-file", str(self.env_file),
                cwd=self.env_file.parent,
                env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )  # fmt: skip
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def probe(self, session: aiohttp.ClientSession) -> Probe:
        try:
            async with session.get(
                f"http://127.0.0.1:{self.port}/readyz",
                timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT),
            ) as response:
                body = await response.json(content_type=None)
                return Probe(response.status, body if isinstance(body, dict) else {})
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return Probe(None, {})

    def signal(self, kind: str) -> None:
        assert self.process is not None
        self.process.send_signal(SIGNALS[kind])

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not go; its exit code."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode

    def tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


async def wait_for(
    what: str, check: Callable[[], Awaitable[bool]], *, within: float, replicas: list[Replica]
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {r.name}.log\n{r.tail()}" for r in replicas)
            raise TimeoutError(f"timed out after {within:.0f}s waiting for {what}\n{logs}")
        await asyncio.sleep(0.1)


# ------------------------------------------------------------------ the leader's work


class Calls:
    """Keeps a few calls going among the connected people, so the leader has statuses to write:
    with the defaults about a dozen status writes a minute, well within Slack's 50."""

    def __init__(self, rc: RingCentralSimulator, people: list[Person], at_once: int) -> None:
        self._rc = rc
        self._idle = [p.extension_id for p in people if p.extension_id is not None]
        self._at_once = at_once
        self._random = random.Random(11)
        self.started = 0

    async def run(self) -> None:
        async with asyncio.TaskGroup() as calls:
            for _ in range(min(self._at_once, len(self._idle))):
                calls.create_task(self._one_line())

    async def _one_line(self) -> None:
        while True:
            extension_id = self._idle.pop(self._random.randrange(len(self._idle)))
            call_id = self._rc.call(extension_id, "connected")
            self.started += 1
            await asyncio.sleep(self._random.uniform(*CALL_SECONDS))
            self._rc.call(extension_id, "ended", call_id=call_id)
            self._idle.append(extension_id)
            await asyncio.sleep(self._random.uniform(*GAP_SECONDS))


def available(rc: RingCentralSimulator, people: Iterable[Person]) -> list[Person]:
    """People on both sides whom the RingCentral simulator shows free at the start."""
    found = []
    for person in people:
        if person.slack_id is None or person.extension_id is None:
            continue
        if person.extension_status != "Enabled":
            continue
        presence = rc.presence(person.extension_id)
        if presence.get("presenceStatus") == "Available" and presence.get(
            "dndStatus", "TakeAllCalls"
        ) in ("TakeAllCalls", None):
            found.append(person)
    return found


class AuthBudget:
    """When RingCentral's simulator admitted each Auth-group request (logins, WebSocket tokens),
    so that a takeover starts only once its WebSocket token fits in the minute's five: a run
    that waited for the limit would time the wait, not the takeover."""

    def __init__(self, rc: RingCentralSimulator, scale: TimeScale) -> None:
        self._rc = rc
        self.limit = DEFAULT_RATE_LIMITS["auth"]
        # A second more than the window, for the bot's and the simulator's clocks to disagree.
        self.window = scale.seconds(RATE_WINDOW_SECONDS) + 1.0
        self._seen = self._admitted()
        self._times: deque[float] = deque(maxlen=self.limit * 4)
        self.waited = 0.0

    def _admitted(self) -> int:
        stats = self._rc.stats()
        return int(stats["groups"]["auth"]) - int(stats["rate_limited_by_group"]["auth"])

    def note(self) -> None:
        admitted = self._admitted()
        now = time.monotonic()
        self._times.extend(now for _ in range(admitted - self._seen))
        self._seen = admitted

    async def run(self) -> None:
        while True:
            self.note()
            await asyncio.sleep(0.1)

    async def room_for(self, requests: int) -> None:
        """Return once `requests` more would be admitted (counting each takeover's token as
        one, with one spare for a login or a retry)."""
        began = time.monotonic()
        while True:
            self.note()
            recent = [t for t in self._times if t > time.monotonic() - self.window]
            if len(recent) + requests <= self.limit:
                self.waited += time.monotonic() - began
                return
            await asyncio.sleep(recent[0] + self.window - time.monotonic() + 0.05)


# ------------------------------------------------------------------ takeovers


@dataclass(slots=True)
class Takeover:
    kind: str
    run: int
    old_leader: str
    old_epoch: int
    new_leader: str | None = None
    new_epoch: int | None = None
    leads_after: float | None = None
    serving_after: float | None = None
    old_exit_after: float | None = None
    old_exit_code: int | None = None
    ws_tokens: int = 0
    auth_429s: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "run": self.run,
            "old_leader": self.old_leader,
            "old_epoch": self.old_epoch,
            "new_leader": self.new_leader,
            "new_epoch": self.new_epoch,
            "leads_after_seconds": _round(self.leads_after),
            "serving_after_seconds": _round(self.serving_after),
            "old_exited_after_seconds": _round(self.old_exit_after),
            "old_exit_code": self.old_exit_code,
            "ws_tokens_issued": self.ws_tokens,
            "auth_group_429s": self.auth_429s,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def the_leader(
    session: aiohttp.ClientSession, replicas: list[Replica], *, within: float
) -> tuple[Replica, Probe]:
    """The one replica serving as leader, once exactly one does and every other is ready."""
    deadline = time.monotonic() + within
    while True:
        probes = await asyncio.gather(*(r.probe(session) for r in replicas))
        leaders = [(r, p) for r, p in zip(replicas, probes, strict=True) if p.serving_as_leader]
        everyone_ready = all(p.status == 200 for p in probes)
        if len(leaders) == 1 and everyone_ready:
            return leaders[0]
        if time.monotonic() > deadline:
            states = {r.name: (p.status, p.body.get("role"), p.body.get("reason")) for r, p in
                      zip(replicas, probes, strict=True)}  # fmt: skip
            raise TimeoutError(f"no single ready leader after {within:.0f}s: {states}")
        await asyncio.sleep(0.1)


async def take_over(
    session: aiohttp.ClientSession,
    replicas: list[Replica],
    kind: str,
    run: int,
    *,
    deadline: float,
) -> Takeover:
    leader, probe = await the_leader(session, replicas, within=START_TIMEOUT)
    others = [r for r in replicas if r is not leader]
    result = Takeover(kind, run, leader.name, probe.epoch)
    assert leader.process is not None
    exited = asyncio.create_task(leader.process.wait())
    began = time.monotonic()
    leader.signal(kind)
    while time.monotonic() - began < deadline:
        if result.old_exit_after is None and exited.done():
            result.old_exit_after = time.monotonic() - began
            result.old_exit_code = exited.result()
        probes = await asyncio.gather(*(r.probe(session) for r in others))
        now = time.monotonic() - began
        for replica, seen in zip(others, probes, strict=True):
            if seen.leads and seen.epoch > result.old_epoch:
                if result.new_leader is None:
                    result.new_leader, result.new_epoch = replica.name, seen.epoch
                    result.leads_after = now
                if replica.name == result.new_leader and seen.serving_as_leader:
                    result.serving_after = now
        if result.serving_after is not None:
            break
        await asyncio.sleep(POLL_EVERY)
    code = await asyncio.wait_for(exited, STOP_TIMEOUT)
    if result.old_exit_after is None:
        result.old_exit_after = time.monotonic() - began
        result.old_exit_code = code
    return result


def figures(runs: list[Takeover]) -> dict[str, Any]:
    leads = [r.leads_after for r in runs if r.leads_after is not None]
    serving = [r.serving_after for r in runs if r.serving_after is not None]
    exits = [r.old_exit_after for r in runs if r.old_exit_after is not None]

    def three(samples: list[float]) -> dict[str, float | None]:
        if not samples:
            return {"median": None, "p90": None, "max": None}
        return {
            "median": round(statistics.median(samples), 3),
            "p90": round(percentile(samples, 0.9), 3),
            "max": round(max(samples), 3),
        }

    return {
        "runs": len(runs),
        "no_new_leader": sum(r.leads_after is None for r in runs),
        "never_served": sum(r.serving_after is None for r in runs),
        "runs_with_auth_429s": sum(r.auth_429s > 0 for r in runs),
        "leads_after_seconds": three(leads),
        "serving_after_seconds": three(serving),
        "old_leader_exited_after_seconds": three(exits),
        "each": [r.as_dict() for r in runs],
    }


# ------------------------------------------------------------------ the fence's cost


def presences(count: int, round_: int) -> list[Presence]:
    """A batch of changed presences as the coordinator saves them, different every round."""
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=round_)
    busy = round_ % 2 == 1
    return [
        Presence(
            extension_id=str(100_000 + n),
            availability_since=at,
            updated_at=at,
            presence_status=PresenceStatus.BUSY if busy else PresenceStatus.AVAILABLE,
            telephony_status=TelephonyStatus.CALL_CONNECTED if busy else TelephonyStatus.NO_CALL,
            active_calls=1 if busy else 0,
        )
        for n in range(count)
    ]


async def fence_cost(
    url: str, *, rounds: int, calls: int, batch: int, lease_seconds: float
) -> dict[str, Any]:
    """Per transaction, the same writes outside and inside `fenced(term, lease)` while the lease
    is held and renewed: in pairs, one of each, which goes first alternating, so that drift and
    a warm cache fall on both alike."""
    store = Store(url)
    await store.open()
    lease = Lease(store.engine, "bench-fence", duration=lease_seconds)
    keeper: asyncio.Task[str] | None = None
    operations: dict[str, Callable[[int], Awaitable[object]]] = {
        "save_presence": lambda n: store.save_presence(presences(batch, n)),
        "update_preferences": lambda n: store.update_preferences(
            TEAM, f"U{n % 50:04d}", call_text=f"On a call ({n})"
        ),
    }
    samples = {name: Samples() for name in operations}
    try:
        term = await asyncio.wait_for(lease.acquire(), lease_seconds * 3)
        keeper = asyncio.create_task(lease.keep())
        for operation in operations.values():
            await operation(0)  # the statement cache, the first upsert's inserts
            with fenced(term, lease):
                await operation(0)
        serial = 1
        for round_ in range(rounds):
            for name, operation in operations.items():
                got = samples[name]
                got.new_round()
                for n in range(calls):
                    pair: dict[str, float] = {}
                    fenced_first = (n + round_) % 2 == 1
                    for is_fenced in (fenced_first, not fenced_first):
                        began = time.perf_counter()
                        if is_fenced:
                            with fenced(term, lease):
                                await operation(serial)
                        else:
                            await operation(serial)
                        pair["fenced" if is_fenced else "plain"] = time.perf_counter() - began
                        serial += 1
                    got.add(pair["plain"], pair["fenced"])
            progress(f"failover: fence round {round_ + 1}/{rounds} done")
        if not lease.valid():
            raise RuntimeError("the lease was lost while the fence was measured")
    finally:
        if keeper is not None:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
        await lease.release()
        await store.close()
    return {
        "rounds": rounds,
        "pairs_per_round": calls,
        "presence_batch": batch,
        **{name: got.figures() for name, got in samples.items()},
    }


@dataclass(slots=True)
class Samples:
    """One operation's timings without and with the fence, pair by pair, round by round."""

    plain: list[float] = field(default_factory=list)
    fenced: list[float] = field(default_factory=list)
    rounds: list[tuple[int, int]] = field(default_factory=list)

    def new_round(self) -> None:
        self.rounds.append((len(self.plain), len(self.plain)))

    def add(self, plain: float, fenced: float) -> None:
        self.plain.append(plain)
        self.fenced.append(fenced)
        first, _ = self.rounds[-1]
        self.rounds[-1] = (first, len(self.plain))

    def figures(self) -> dict[str, Any]:
        ratios = [
            statistics.median(self.fenced[a:b]) / statistics.median(self.plain[a:b])
            for a, b in self.rounds
            if b > a
        ]
        added = [f - p for p, f in zip(self.plain, self.fenced, strict=True)]
        return {
            "plain_median_ms": round(statistics.median(self.plain) * 1000, 3),
            "fenced_median_ms": round(statistics.median(self.fenced) * 1000, 3),
            "plain_p90_ms": round(percentile(self.plain, 0.9) * 1000, 3),
            "fenced_p90_ms": round(percentile(self.fenced, 0.9) * 1000, 3),
            "added_ms_median_of_pairs": round(statistics.median(added) * 1000, 3),
            "ratio_per_round": [round(r, 3) for r in ratios],
            "ratio": round(statistics.median(ratios), 3),
        }


# ------------------------------------------------------------------ the run


@dataclass(frozen=True, slots=True)
class Plan:
    kinds: tuple[str, ...]
    runs: int
    people: int
    calls: int
    replicas: int
    scale: float
    lease_seconds: float | None
    deadline: float
    spacing: float
    pace: bool
    fence_rounds: int
    fence_calls: int
    fence_batch: int
    seed: int
    postgres: str = POSTGRES_SERVER
    logs: Path | None = None


async def run(plan: Plan) -> dict[str, Any]:
    # Stopped from outside (SIGTERM, or SIGINT where a shell left it to us), the replicas are
    # still stopped and the role and schema dropped on the way out.
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    assert me is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, me.cancel)
    with contextlib.ExitStack() as stack:
        directory = plan.logs or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        directory.mkdir(parents=True, exist_ok=True)
        async with private_schema(plan.postgres) as url:
            result = await _run(plan, url, directory)
    return result


async def _run(plan: Plan, url: str, directory: Path) -> dict[str, Any]:
    # Some of the company start out busy or unlinked; twice as many leave enough free to connect.
    company = build_company(2 * plan.people, seed=plan.seed)
    scale = TimeScale(plan.scale)
    ports = [free_port() for _ in range(plan.replicas)]
    app_url = f"http://127.0.0.1:{ports[0]}"
    lease_seconds = plan.lease_seconds
    rc = RingCentralSimulator(company, time_scale=scale)
    slack = SlackSimulator(company, time_scale=scale, app_url=app_url)
    result: dict[str, Any] = {}
    async with rc, slack, aiohttp.ClientSession() as session:
        base = simulator_env(rc, slack, app_url=app_url, time_scale=scale)
        replicas = []
        for i, port in enumerate(ports):
            env = {**base, "PORT": str(port), "DATABASE_URL": url, "REPLICA_ID": f"r{i}"}
            if lease_seconds is not None:
                env["LEADER_LEASE_SECONDS"] = f"{lease_seconds:g}"
            replicas.append(Replica(f"r{i}", env, directory))
        # What the replicas make of their settings, the bot's default included.
        lease = Settings.from_env(env, env_file=None).leader_lease_seconds
        calls: asyncio.Task[None] | None = None
        # From before the first replica starts: its login and WebSocket token count too.
        budget = AuthBudget(rc, scale)
        watching = asyncio.create_task(budget.run())
        try:
            # The first replica leads alone while people connect through its OAuth pages.
            first = replicas[0]
            await first.start()
            await the_leader(session, [first], within=START_TIMEOUT)
            people = available(rc, company.people)[: plan.people]
            for person in people:
                assert person.slack_id is not None
                outcome = await slack.authorize(person.slack_id)
                if not outcome.get("ok"):
                    raise RuntimeError(f"connecting {person.slack_id} failed: {outcome}")
            progress(f"failover: {len(people)} people connected through {first.name}")
            for replica in replicas[1:]:
                await replica.start()
            await the_leader(session, replicas, within=START_TIMEOUT)
            progress(f"failover: {len(replicas)} replicas up, {first.name} leads")
            line = Calls(rc, people, plan.calls)
            calls = asyncio.create_task(line.run())
            last_signal = -math.inf
            # The followers look for the lease every second and the leader renews it every third
            # of its life: signals at a steady period would meet both at the same phase each run.
            jitter = random.Random(plan.seed)
            phases = max(1.0, lease / 3)
            for kind in plan.kinds:
                runs = []
                slack_before = slack.stats()
                for n in range(1, plan.runs + 1):
                    await asyncio.sleep(max(0.0, last_signal + plan.spacing - time.monotonic()))
                    if plan.pace:
                        await budget.room_for(2)
                    await asyncio.sleep(jitter.uniform(0.0, phases))
                    before = rc.stats()
                    last_signal = time.monotonic()
                    done = await take_over(session, replicas, kind, n, deadline=plan.deadline)
                    after = rc.stats()
                    done.ws_tokens = after["ws_tokens"] - before["ws_tokens"]
                    done.auth_429s = (
                        after["rate_limited_by_group"]["auth"]
                        - before["rate_limited_by_group"]["auth"]
                    )
                    runs.append(done)
                    progress(
                        f"failover: {kind} {n}/{plan.runs}: {done.old_leader} (epoch "
                        f"{done.old_epoch}) -> {done.new_leader} (epoch {done.new_epoch}), "
                        f"leads after {_s(done.leads_after)}, serving after "
                        f"{_s(done.serving_after)}"
                        + (f" ({done.auth_429s} auth-group 429s)" if done.auth_429s else "")
                    )
                    gone = next(r for r in replicas if r.name == done.old_leader)
                    await restart(session, gone, replicas)
                result[kind] = figures(runs)
                result[kind]["slack"] = _profile_writes(slack_before, slack.stats())
            result["waited_for_auth_budget_seconds"] = round(budget.waited, 1)
            result["calls_started"] = line.started
            result["rc_stats"] = _rate_limited(rc.stats())
            result["slack_rate_limited"] = slack.stats()["rate_limited"]
            result["slack_calls"] = slack.stats()["calls"]
        finally:
            for task in (calls, watching):
                if task is not None:
                    task.cancel()
            await asyncio.gather(*(t for t in (calls, watching) if t), return_exceptions=True)
            codes = await asyncio.gather(*(r.stop() for r in replicas))
            result["exit_codes_at_end"] = dict(zip((r.name for r in replicas), codes, strict=True))
        result["replica_starts"] = {r.name: r.starts for r in replicas}
    progress("failover: measuring the fence's cost on the same database, replicas stopped")
    result["fence"] = await fence_cost(
        url,
        rounds=plan.fence_rounds,
        calls=plan.fence_calls,
        batch=plan.fence_batch,
        lease_seconds=lease,
    )
    result.update(
        {
            "people_connected": len(people),
            "calls_at_once": plan.calls,
            "spacing_seconds": plan.spacing,
            "paced_to_auth_budget": plan.pace,
            "replicas": plan.replicas,
            "time_scale": plan.scale,
            "leader_lease_seconds": lease,
            "leader_lease_is_default": lease_seconds is None,
            "kinds": list(plan.kinds),
        }
    )
    return result


async def restart(
    session: aiohttp.ClientSession, replica: Replica, replicas: list[Replica]
) -> None:
    """Start a stopped replica again and wait until it serves (as a follower)."""
    await replica.start()

    async def ready() -> bool:
        if not replica.alive:
            raise RuntimeError(f"{replica.name} exited:\n{replica.tail()}")
        return (await replica.probe(session)).status == 200

    await wait_for(f"{replica.name} to serve again", ready, within=START_TIMEOUT, replicas=replicas)


def _rate_limited(stats: dict[str, Any]) -> dict[str, Any]:
    """The RingCentral simulator's 429s and logins, which a takeover may spend."""
    return {
        key: value
        for key, value in stats.items()
        if any(word in key.lower() for word in ("429", "rate", "limited", "token", "login"))
    }


def _profile_writes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """Status writes the leaders sent Slack during a phase, and how many Slack refused: each
    new leader starts with a fresh budget, not knowing what the last one spent."""

    def count(stats: dict[str, Any], kind: str) -> int:
        return int(stats[kind].get(PROFILE_SET, 0))

    return {
        "profile_set_calls": count(after, "calls") - count(before, "calls"),
        "profile_set_429s": count(after, "rate_limited") - count(before, "rate_limited"),
    }


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


# ------------------------------------------------------------------ summary and entry point


def summarise(result: dict[str, Any]) -> str:
    labels = {"kill": "kill -9", "term": "SIGTERM"}
    parts = [
        f"{result['replicas']} replicas on PostgreSQL, lease {result['leader_lease_seconds']:g} s"
    ]
    for kind in result["kinds"]:
        one = result[kind]
        leads, serving = one["leads_after_seconds"], one["serving_after_seconds"]
        failed = one["no_new_leader"] + one["never_served"]
        target = ""
        if kind == "term" and serving["max"] is not None:
            target = " (target 3 s: " + (
                "met)" if serving["max"] <= HANDOVER_TARGET else "NOT MET)"
            )
        throttled = one["runs_with_auth_429s"]
        parts.append(
            f"{labels[kind]} x{one['runs']}: leads after {_n(leads['median'])}/"
            f"{_n(leads['max'])} s, serving with RingCentral after {_n(serving['median'])}/"
            f"{_n(serving['max'])} s (median/max){target}"
            + (f", {failed} FAILED" if failed else "")
            + (f", {throttled} waited for RingCentral's auth limit" if throttled else "")
            + f", {one['slack']['profile_set_429s']} Slack 429s"
        )
    fence = result["fence"]
    parts.append(
        "fence per transaction: "
        + ", ".join(
            f"{name} {fence[name]['plain_median_ms']:.2f} ms "
            f"{fence[name]['added_ms_median_of_pairs']:+.2f} ms (x{fence[name]['ratio']:.2f})"
            for name in ("save_presence", "update_preferences")
        )
    )
    return joined(parts)


def _n(value: float | None) -> str:
    return "n/a" if value is None else fmt(value, 2)


def main(argv: list[str] | None = None, *, directory: Path = RESULTS_DIR) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--runs", type=int, default=10, help="takeovers of each kind")
    parser.add_argument("--people", type=int, default=20, help="people connected")
    parser.add_argument("--calls", type=int, default=3, help="calls going at once")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="simulators' time scale")
    parser.add_argument(
        "--lease-seconds", type=float, default=None, help="LEADER_LEASE_SECONDS (bot default)"
    )
    parser.add_argument("--deadline", type=float, default=90.0, help="seconds per takeover")
    parser.add_argument(
        "--spacing", type=float, default=2.0, help="least seconds between two takeovers"
    )
    parser.add_argument(
        "--no-pace",
        action="store_true",
        help="do not wait for room in RingCentral's 5 logins and WebSocket tokens a minute",
    )
    parser.add_argument("--fence-rounds", type=int, default=5)
    parser.add_argument("--fence-calls", type=int, default=40, help="per round, each way")
    parser.add_argument("--fence-batch", type=int, default=250, help="presences per save")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--postgres", default=POSTGRES_SERVER, help="a server where a role and schema may be made"
    )
    parser.add_argument("--logs", type=Path, help="keep the replicas' env files and logs here")
    args = parser.parse_args(argv)
    if args.replicas < 2:
        parser.error("a takeover needs at least 2 replicas")
    plan = Plan(
        kinds=tuple(args.kinds),
        runs=args.runs,
        people=args.people,
        calls=args.calls,
        replicas=args.replicas,
        scale=args.scale,
        lease_seconds=args.lease_seconds,
        deadline=args.deadline,
        spacing=args.spacing,
        pace=not args.no_pace,
        fence_rounds=args.fence_rounds,
        fence_calls=args.fence_calls,
        fence_batch=args.fence_batch,
        seed=args.seed,
        postgres=args.postgres,
        logs=args.logs,
    )
    try:
        result = asyncio.run(run(plan))
    except asyncio.CancelledError:
        progress("failover: stopped before the end; replicas stopped, schema dropped, no result")
        raise SystemExit(1) from None
    summary = summarise(result)
    write_result("failover", result, summary=summary, directory=directory)
    progress(f"failover: {summary}")
    return result


if __name__ == "__main__":
    main()
