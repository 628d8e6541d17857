"""The whole bot, wired as `rcstatus-bot run` wires it, against both simulators in one process."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import random
import signal
import socket
import sys
from collections.abc import AsyncIterator, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
from slack_sdk.oauth.installation_store import Installation

from bot.app import Bot
from bot.cli import simulator_env, write_env_file
from bot.config import Settings
from bot.sim.company import Company, Person, build_company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral import RingCentralSimulator
from bot.sim.slack import SlackSimulator
from bot.sim.slack.state import DEFAULT_EVENT_SUBSCRIPTIONS
from tests.helpers import wait_until

REPO: Final = Path(__file__).parents[2]


TEST_PORTS: Final = range(20_000, 32_000)
"""Below Linux's ephemeral range (32768 and up), from which outgoing connections take their
ports. A port the kernel picked for a test could be taken by any client socket, in either xdist
worker, between the probe and the server's bind: "address already in use" in CI."""


@functools.cache
def _worker_ports() -> tuple[Iterator[int], int]:
    """This xdist worker's own slice of TEST_PORTS, cycled from a random place (so that two runs
    on one machine rarely start together), and its width."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker) if worker.isdigit() else 0
    width = len(TEST_PORTS) // max(workers, index + 1)
    start = TEST_PORTS.start + index * width
    offset = random.randrange(width)
    ports = [*range(start + offset, start + width), *range(start, start + offset)]
    return itertools.cycle(ports), width


def free_port() -> int:
    """A port nothing listens on now, that no outgoing connection will take."""
    ports, width = _worker_ports()
    for _ in range(width):
        port = next(ports)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {TEST_PORTS}")


@dataclass
class Sims:
    company: Company
    rc: RingCentralSimulator
    slack: SlackSimulator
    scale: TimeScale
    port: int

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, database: Path, **extra: str) -> dict[str, str]:
        """The settings `rcstatus-bot sim` would write, plus a database and overrides."""
        env = simulator_env(self.rc, self.slack, app_url=self.app_url, time_scale=self.scale)
        env.update({"DATABASE_URL": f"sqlite+aiosqlite:///{database}", **extra})
        return env

    def settings(self, database: Path, **extra: str) -> Settings:
        return Settings.from_env(self.env(database, **extra), env_file=None)

    def people(self) -> list[Person]:
        """People on both sides who start out available (the RC simulator seeds a few busy)."""
        result = []
        for person in self.company.people:
            if person.slack_id is None or person.extension_id is None:
                continue
            if person.extension_status != "Enabled":
                continue
            presence = self.rc.presence(person.extension_id)
            if presence.get("presenceStatus") == "Available" and presence.get(
                "dndStatus", "TakeAllCalls"
            ) in ("TakeAllCalls", None):
                result.append(person)
        return result

    def profile(self, person: Person) -> dict[str, Any]:
        assert person.slack_id is not None
        return self.slack.user(person.slack_id)

    def call(self, person: Person, state: str) -> None:
        assert person.extension_id is not None
        self.rc.call(person.extension_id, state)


@contextlib.asynccontextmanager
async def simulators(
    users: int = 20,
    scale: float = 60.0,
    seed: int = 7,
    slack_events: Collection[str] = DEFAULT_EVENT_SUBSCRIPTIONS,
    rc_switches: Mapping[str, Any] | None = None,
) -> AsyncIterator[Sims]:
    company = build_company(users, seed=seed)
    time_scale = TimeScale(scale)
    port = free_port()
    rc = RingCentralSimulator(company, time_scale=time_scale, **(rc_switches or {}))
    slack = SlackSimulator(
        company,
        time_scale=time_scale,
        app_url=f"http://127.0.0.1:{port}",
        event_subscriptions=slack_events,
    )
    await rc.start()
    await slack.start()
    try:
        yield Sims(company, rc, slack, time_scale, port)
    finally:
        await slack.stop()
        await rc.stop()


@contextlib.asynccontextmanager
async def running_bot(sims: Sims, database: Path, **extra: str) -> AsyncIterator[Bot]:
    bot = await Bot.create(sims.settings(database, PORT=str(sims.port), **extra))
    try:
        await bot.start()
        await wait_until(lambda: bot.ready, timeout=20, message="the bot's first presence snapshot")
        yield bot
    finally:
        await bot.stop()


async def connect(sims: Sims, person: Person) -> None:
    """The person connects their status through the real OAuth flow, as in a browser."""
    assert person.slack_id is not None
    outcome = await sims.slack.authorize(person.slack_id)
    assert outcome.get("ok"), outcome


async def connect_quickly(sims: Sims, bot: Bot, people: list[Person]) -> None:
    """Give many people a user token at once (setup for load tests, not what is under test)."""
    store = bot.store.installation_store
    for person in people:
        assert person.slack_id is not None
        token = sims.slack.grant_user_token(person.slack_id)
        await store.async_save(
            Installation(
                app_id=sims.slack.app_id,
                enterprise_id=None,
                team_id=bot.team_id,
                user_id=person.slack_id,
                user_token=token,
                user_scopes=["users.profile:write"],
                bot_token=bot.identity.bot_token,
                bot_user_id=bot.identity.bot_user_id,
            )
        )
    for person in people:
        assert person.slack_id is not None
        await bot.person_connected(person.slack_id)


async def caught_up(bot: Bot, sims: Sims, person: Person) -> None:
    """The bot has taken in every phone change made for `person` and has no write queued."""
    assert person.extension_id is not None
    assert person.slack_id is not None
    extension_id = person.extension_id
    events = sims.rc.events(extension_id=extension_id)
    last_change = events[-1]["time"] if events else 0.0

    def taken_in() -> bool:
        known = bot.presence(str(extension_id))
        return known is not None and known.updated_at.timestamp() >= last_change

    await wait_until(taken_in, message=f"the bot to take in {person.slack_id}'s phone changes")
    await bot.settle()


def rcstatus_bot() -> list[str]:
    """The command line that starts `rcstatus-bot`: the installed script, as an operator runs it."""
    script = Path(sys.executable).with_name("rcstatus-bot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


def cli_env() -> dict[str, str]:
    """Only what a shell would give the command: the settings come from the env file."""
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}


def write_env(sims: Sims, tmp_path: Path, **extra: str) -> Path:
    """The env file `rcstatus-bot sim` would write, with a database and port in `tmp_path`."""
    env_file = tmp_path / "bot.env"
    write_env_file(env_file, sims.env(tmp_path / "bot.db", PORT=str(sims.port), **extra))
    return env_file


class BotProcess:
    """`rcstatus-bot run` in its own process, so it can be killed as an operator would.

    `port` and `environ` are what an operator gives each of several replicas that share one
    env file (the environment wins over the file); the defaults are the single bot's.
    """

    def __init__(
        self,
        sims: Sims,
        env_file: Path,
        *,
        port: int | None = None,
        name: str = "bot",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.sims = sims
        self.env_file = env_file
        self.port = sims.port if port is None else port
        self.name = name
        self.environ = {"PORT": str(self.port), **(environ or {})}
        self.process: asyncio.subprocess.Process | None = None
        self.log = env_file.parent / f"{name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, *, ready: bool = True) -> None:
        """Start the process; with `ready`, until its /readyz answers 200."""
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *rcstatus_bot(), "run", "--env-file", str(self.env_file),
                cwd=self.env_file.parent,
                env={**cli_env(), **self.environ},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )  # fmt: skip
        if not ready:
            return
        try:
            await wait_until(self.healthy, timeout=30, message=f"{self.name} to be ready")
        except AssertionError as failed:
            raise AssertionError(
                f"{failed}; its log ends:\n{self.log.read_text()[-3000:]}"
            ) from None

    async def readiness(self) -> tuple[int, dict[str, Any]] | None:
        """/readyz's status and JSON; None while nothing answers (stopped, paused, starting)."""
        # A paused process still accepts connections (the kernel does), so never wait long.
        timeout = aiohttp.ClientTimeout(total=2)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(self.url + "/readyz") as response,
            ):
                body = await response.json(content_type=None)
                return response.status, body if isinstance(body, dict) else {}
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def healthy(self) -> bool:
        answer = await self.readiness()
        return answer is not None and answer[0] == 200

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: the process hangs with every socket and database session left open."""
        assert self.process is not None
        assert self.process.returncode is None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    async def terminate(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            # A paused process would never see SIGTERM.
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), timeout=15)
        return self.process.returncode or 0
