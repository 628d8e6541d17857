"""Shared benchmark plumbing: machine facts, progress, waiting, percentiles, the results table."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import platform
import socket
import sys
import time
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Final

from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.sqlalchemy_utils import normalize_datetime_for_db

from bot.app import Bot, PresencePipeline
from bot.config import Settings
from bot.ringcentral.subscriber import LinkState
from bot.roster import PersonChange, Roster
from bot.sim.company import Company, build_company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral import RingCentralSimulator
from bot.supervisor import Supervisor

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TABLE_START = "<!-- results table: written by `python -m bench`, do not edit by hand -->"
TABLE_END = "<!-- end of results table -->"


def progress(message: str) -> None:
    """Progress goes to stderr so stdout stays free for whoever pipes the run."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loop_ms": loop_ms(),
    }


def loop_ms(rounds: int = 5) -> float:
    """Milliseconds one CPU takes for a million additions in a Python loop, the best of
    `rounds`: machines of one kind have differed more than twofold from day to day, and
    results from two runs compare only alongside this."""
    best = math.inf
    for _ in range(rounds):
        started = time.perf_counter()
        total = 0
        for n in range(1_000_000):
            total += n
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def machine_label(info: dict[str, Any]) -> str:
    speed = f", 1M-addition loop {info['loop_ms']:g} ms" if "loop_ms" in info else ""
    return f"{info['platform']}, {info['cpus']} CPUs, Python {info['python']}{speed}"


def percentile(samples: Sequence[float], share: float) -> float:
    """Nearest-rank percentile: `share` in [0, 1]; NaN for no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def wait_until(
    predicate: Callable[[], bool], *, within: float, interval: float = 0.01, what: str
) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass(slots=True)
class ChangeClock:
    """A consumer under the hub that notes when each person's change reached it (monotonic s)."""

    seen: list[tuple[float, PersonChange]] = field(default_factory=list)

    async def on_person_change(self, change: PersonChange) -> None:
        self.seen.append((time.monotonic(), change))

    async def on_resync(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Link:
    user_id: str
    extension_id: str


@dataclass(frozen=True, slots=True)
class EveryoneLinked:
    """Every extension of the company linked to a Slack user of its own, as the mapping would:
    the hub tells its consumers only linked people's changes, and a benchmark wants them all."""

    company: Company

    async def links(self, team_id: str) -> list[Link]:
        return [
            Link(f"U{person.extension_id}", str(person.extension_id))
            for person in self.company.rc_users
            if person.extension_id is not None
        ]


def pipeline_settings(sim: RingCentralSimulator, scale: TimeScale, **extra: str) -> Settings:
    return Settings.from_env(
        {
            "RC_SERVER_URL": sim.url,
            "RC_CLIENT_ID": sim.client_id,
            "RC_CLIENT_SECRET": sim.client_secret,
            "RC_JWT": sim.jwt,
            "TIME_SCALE": f"{scale.factor:g}",
            **extra,
        },
        env_file=None,
    )


@dataclass(slots=True)
class Rig:
    """The simulator and the real presence pipeline, in this process."""

    company: Company
    sim: RingCentralSimulator
    scale: TimeScale
    pipeline: PresencePipeline
    supervisor: Supervisor
    clock: ChangeClock
    started_at: float
    settled_at: float


@contextlib.asynccontextmanager
async def running_pipeline(
    people: int, *, scale: float, seed: int = 7, settle_timeout: float = 300.0
) -> AsyncIterator[Rig]:
    """Start the simulator and the pipeline, and yield once connected with the snapshot applied.

    Every extension is linked, so the consumer is told every change, as a bot whose whole
    company has connected would be."""
    company = build_company(people, seed=seed)
    time_scale = TimeScale(scale)
    clock = ChangeClock()
    async with RingCentralSimulator(company, time_scale=time_scale) as sim:
        pipeline = PresencePipeline.build(
            pipeline_settings(sim, time_scale),
            team_id="T1",
            roster=Roster(),
            links=EveryoneLinked(company),
            consumers=[clock],
        )
        supervisor = Supervisor(backoff_base=0.05, backoff_cap=0.5)
        started = time.monotonic()
        try:
            await pipeline.start(supervisor)
            await wait_until(
                lambda: (
                    pipeline.subscriber.health.state is LinkState.CONNECTED
                    and pipeline.coordinator.first_snapshot.is_set()
                ),
                within=settle_timeout,
                what="subscriber connected and first snapshot applied",
            )
            settled = time.monotonic()
            yield Rig(company, sim, time_scale, pipeline, supervisor, clock, started, settled)
        finally:
            await supervisor.stop()


TOKEN_BATCH: Final = 250
"""People whose tokens are stored in one transaction."""


async def connect_everyone(bot: Bot, app_id: str, tokens: Mapping[str, str], *, label: str) -> None:
    """Store each person's user token as the OAuth flow would, then tell the writer.

    The rows are exactly those the installation store's `async_save` writes (an installation
    and a bot row per person), inserted a few hundred to a transaction: 20,000 transactions one
    at a time took most of a minute at 10,000 people and are no part of what is measured. In
    batches, not all at once, so that no more memory is held than saving them one by one held:
    the bot's RSS is measured afterwards. The OAuth pages are skipped for the same reason."""
    store = bot.store.installation_store
    people = list(tokens.items())
    for first in range(0, len(people), TOKEN_BATCH):
        installations, bots = [], []
        for user_id, token in people[first : first + TOKEN_BATCH]:
            installation = Installation(
                app_id=app_id,
                enterprise_id=None,
                team_id=bot.team_id,
                user_id=user_id,
                user_token=token,
                user_scopes=["users.profile:write"],
                bot_token=bot.identity.bot_token,
                bot_user_id=bot.identity.bot_user_id,
            )
            installations.append(
                _row(
                    installation.to_dict(),
                    store.client_id,
                    ("installed_at", "bot_token_expires_at", "user_token_expires_at"),
                )
            )
            bots.append(
                _row(
                    installation.to_bot().to_dict(),
                    store.client_id,
                    ("installed_at", "bot_token_expires_at"),
                )
            )
        async with store.engine.begin() as conn:
            await conn.execute(store.installations.insert(), installations)
            await conn.execute(store.bots.insert(), bots)
    progress(f"{label}: {len(people):,} tokens stored")
    for done, user_id in enumerate(tokens, 1):
        await bot.person_connected(user_id)
        if done % 2000 == 0:
            progress(f"{label}: {done:,}/{len(tokens):,} people connected")


def _row(fields: dict[str, Any], client_id: str, times: tuple[str, ...]) -> dict[str, Any]:
    """One row as slack_sdk's SQLAlchemy store writes it: its client id, naive UTC times."""
    row = {**fields, "client_id": client_id}
    for name in times:
        row[name] = normalize_datetime_for_db(row.get(name))
    return row


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def receive(conn: Connection, *, within: float) -> Any:
    """The next message from another process, without blocking the event loop while it comes."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(conn.fileno(), ready.set)
    try:
        if not conn.poll():
            await asyncio.wait_for(ready.wait(), within)
    finally:
        loop.remove_reader(conn.fileno())
    # A process that died closes its end: recv() then raises EOFError instead of hanging.
    return conn.recv()


def write_result(name: str, data: dict[str, Any], *, summary: str, directory: Path) -> Path:
    """Write `<name>.json` (with machine and time) and refresh the table in README.md."""
    directory.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "ran_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "summary": summary,
        **data,
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    refresh_table(directory)
    return path


def refresh_table(directory: Path) -> None:
    """Rebuild the table from every JSON result present, so it never disagrees with them."""
    rows = []
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rows.append(
            f"| {record.get('benchmark', path.stem)} | {record.get('summary', '')} "
            f"| {machine_label(record['machine'])} | {record.get('ran_at', '')} |"
        )
    table = "\n".join(
        [
            TABLE_START,
            "| benchmark | result (ours vs baseline) | machine | ran at (UTC) |",
            "|---|---|---|---|",
            *rows,
            TABLE_END,
        ]
    )
    readme = directory / "README.md"
    text = readme.read_text() if readme.exists() else _readme_preamble()
    if TABLE_START in text and TABLE_END in text:
        text = _replace_table(text, table)
    else:
        text = text.rstrip("\n") + "\n\n" + table + "\n"
    readme.write_text(text)
    # The project README shows the same table wherever it carries the markers.
    project_readme = directory.parent.parent / "README.md"
    if project_readme.exists():
        project_text = project_readme.read_text()
        if TABLE_START in project_text and TABLE_END in project_text:
            project_readme.write_text(_replace_table(project_text, table))


def _replace_table(text: str, table: str) -> str:
    before, rest = text.split(TABLE_START, 1)
    after = rest.split(TABLE_END, 1)[1]
    return before + table + after


def _readme_preamble() -> str:
    return (
        "# Benchmark results\n\n"
        "Written by `make bench` (`python -m bench`); each benchmark also leaves "
        "`<name>.json` here with every figure, its baseline and the machine it ran on.\n"
    )


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def joined(parts: Iterable[str]) -> str:
    return "; ".join(parts)


CHILD_STOP_TIMEOUT: Final = 10.0


class Child:
    """A child process and its pipe; whatever happens, it is stopped and joined."""

    def __init__(self, target: Any, config: Any, name: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, theirs = context.Pipe()
        self.name = name
        self.process: BaseProcess = context.Process(target=target, args=(theirs, config), name=name)
        self.process.start()
        theirs.close()

    async def ask(self, message: tuple[Any, ...], kind: str, *, within: float) -> Any:
        self._conn.send(message)
        return await self.expect(kind, within=within)

    def send(self, message: tuple[Any, ...]) -> None:
        self._conn.send(message)

    async def expect(self, kind: str, *, within: float) -> Any:
        try:
            got, body = await receive(self._conn, within=within)
        except EOFError:
            raise RuntimeError(f"{self.name} died (exit {self.process.exitcode})") from None
        if got == "error":
            raise RuntimeError(f"{self.name} failed:\n{body}")
        if got != kind:
            raise RuntimeError(f"expected {kind!r} from {self.name}, got {got!r}")
        return body

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(("stop",))
        self.process.join(CHILD_STOP_TIMEOUT)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(CHILD_STOP_TIMEOUT)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._conn.close()


@contextlib.contextmanager
def child(target: Any, config: Any, name: str) -> Iterator[Child]:
    process = Child(target, config, name)
    try:
        yield process
    finally:
        process.stop()


def serve_child(
    conn: Connection, serve: Callable[[Connection, Any], Coroutine[Any, Any, None]], config: Any
) -> None:
    """A child process's body: `serve(conn, config)` until the parent stops it or goes away."""
    try:
        asyncio.run(serve(conn, config))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass  # the parent went away; nothing is left to report to
    finally:
        conn.close()
