"""Several `rcstatus-bot run` processes on one PostgreSQL: start, kill, pause, find the leader,
and read what each one logged, with its time, to tell which process did what and when.

The replicas share one env file and differ only in PORT, given in their environment, as an
operator runs them. They log JSON (LOG_FORMAT=json) so that every line carries a UTC time to the
millisecond that the tests can set against the simulators' own records of the same moments.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from tests.helpers import wait_until
from tests.integration.bot_harness import BotProcess, Sims, free_port, write_env

LEASE_SECONDS: Final = 5
"""LEADER_LEASE_SECONDS for the tests: shorter than the default 10 to keep them short; the
takeover the tests wait for is this plus a few seconds, never a fixed time."""
TAKEOVER_DEADLINE: Final = 15.0
"""Issue 12: after kill -9 of the leader, a follower leads within 15 s."""

STATUS_WRITE: Final = re.compile(r"^status (?:written|cleared) for (?P<user>\S+) \(expires at")
"""bot/slack/profiles.py, once per `users.profile.set` that Slack accepted."""
WEBHOOK_ATTEMPT: Final = re.compile(
    r"^webhook (?P<endpoint>\S+): event (?P<event>\d+) attempt (?P<attempt>\d+): (?P<outcome>.*)$"
)
"""bot/webhooks/dispatcher.py, once per attempt, after the receiver answered or not."""
LEADING: Final = re.compile(r"\bleading as epoch (?P<epoch>\d+)\b")
STEPPED_DOWN: Final = "stepped down"
TAIL_MARK: Final = "--- log of"
COMMAND: Final = re.compile(r"^/rcstatus (?P<subcommand>\S+) from (?P<user>\S+)$")


@dataclass(frozen=True)
class LogLine:
    at: float
    """Unix time, to the millisecond."""
    level: str
    logger: str
    message: str


def read_log(path: Path) -> list[LogLine]:
    """Every JSON line of a replica's log (across its restarts); anything else is skipped, such
    as a line the process was still writing."""
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(raw)
            at = datetime.fromisoformat(entry["time"]).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        lines.append(
            LogLine(at, str(entry.get("level")), str(entry.get("logger")), str(entry["message"]))
        )
    return lines


class Replica(BotProcess):
    """One `rcstatus-bot run` of several, with what its log says it did."""

    def lines(self, since: float | None = None) -> list[LogLine]:
        return [line for line in read_log(self.log) if since is None or line.at >= since]

    def matching(self, pattern: re.Pattern[str], since: float | None = None) -> list[LogLine]:
        return [line for line in self.lines(since) if pattern.search(line.message)]

    def status_writes(self, since: float | None = None) -> list[LogLine]:
        return self.matching(STATUS_WRITE, since)

    def webhook_attempts(self, since: float | None = None) -> list[LogLine]:
        return self.matching(WEBHOOK_ATTEMPT, since)

    def commands(self, since: float | None = None) -> list[LogLine]:
        return self.matching(COMMAND, since)

    def leading(self, since: float | None = None) -> list[tuple[float, int]]:
        """(when, epoch) for every `leading as epoch N` line."""
        found = []
        for line in self.lines(since):
            match = LEADING.search(line.message)
            if match is not None:
                found.append((line.at, int(match["epoch"])))
        return found

    def stepped_down(self, since: float | None = None) -> list[LogLine]:
        return [line for line in self.lines(since) if STEPPED_DOWN in line.message]

    async def role(self) -> str | None:
        """`role` from /readyz (issue 12), None while it does not answer or has no role."""
        answer = await self.readiness()
        if answer is None:
            return None
        role = answer[1].get("role")
        return str(role) if role is not None else None

    def tail(self, count: int = 15) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        last = "\n".join(text.splitlines()[-count:])
        return f"{TAIL_MARK} {self.name} (port {self.port}) ---\n{last}"


class Replicas:
    """N replicas of the bot on one database, started one after the other."""

    def __init__(
        self,
        sims: Sims,
        tmp_path: Path,
        database_url: str,
        count: int = 3,
        **settings: str,
    ) -> None:
        defaults = {"LEADER_LEASE_SECONDS": str(LEASE_SECONDS)}
        self.env_file = write_env(
            sims, tmp_path, DATABASE_URL=database_url, **{**defaults, **settings}
        )
        # Logging is set up before the env file is read: LOG_FORMAT comes from the environment.
        environ = {"LOG_FORMAT": "json"}
        # The first takes the port the Slack simulator sends browsers (OAuth) and HTTP mode to.
        ports = [sims.port] + [free_port() for _ in range(count - 1)]
        self.members = [
            Replica(sims, self.env_file, port=port, name=f"replica{index}", environ=environ)
            for index, port in enumerate(ports)
        ]

    async def start(self, count: int | None = None) -> None:
        """The first `count` (all by default) not yet started, each in turn until its /readyz
        answers 200 (the first one has the store to itself while it creates the tables)."""
        waiting = [m for m in self.members if m.process is None]
        for member in waiting[:count]:
            await member.start()

    async def stop(self) -> list[int]:
        """SIGTERM to each one still running; their exit codes (one killed earlier is not
        counted: its code is the test's doing)."""
        return [await member.terminate() for member in self.members if member.running]

    def running(self, excluding: Collection[Replica] = ()) -> list[Replica]:
        return [m for m in self.members if m.running and m not in excluding]

    async def leader(
        self, *, excluding: Collection[Replica] = (), timeout: float = TAKEOVER_DEADLINE
    ) -> Replica:
        """The one running replica (not in `excluding`) whose /readyz says `role: leader`, once
        exactly one does."""
        seen: dict[str, str | None] = {}
        chosen: list[Replica] = []

        async def exactly_one() -> bool:
            nonlocal seen, chosen
            candidates = self.running(excluding)
            roles = await asyncio.gather(*(m.role() for m in candidates))
            seen = {m.name: r for m, r in zip(candidates, roles, strict=True)}
            chosen = [m for m, r in zip(candidates, roles, strict=True) if r == "leader"]
            return len(chosen) == 1

        try:
            await wait_until(exactly_one, timeout=timeout, interval=0.05, message="one leader")
        except AssertionError:
            raise AssertionError(
                f"expected exactly one of {[m.name for m in self.running(excluding)]} to report "
                f'"role": "leader" in /readyz within {timeout:g}s (issue 12); their roles were '
                f"{seen}\n{self.tails()}"
            ) from None
        return chosen[0]

    async def takeover(
        self, old: Replica, since: float, *, timeout: float = TAKEOVER_DEADLINE
    ) -> tuple[Replica, float, int]:
        """The replica other than `old` that logged `leading as epoch N` after `since` and says
        it leads: (it, when it logged that, N)."""

        def logged() -> tuple[Replica, float, int] | None:
            for member in self.running(excluding=[old]):
                for at, epoch in member.leading(since):
                    return member, at, epoch
            return None

        try:
            await wait_until(
                lambda: logged() is not None,
                timeout=timeout,
                interval=0.05,
                message="a new leader",
            )
        except AssertionError:
            raise AssertionError(
                f"expected another replica than {old.name} to log 'leading as epoch N' within "
                f"{timeout:g}s of {time.strftime('%H:%M:%S', time.gmtime(since))} UTC "
                f"(issue 12: a follower leads within 15 s)\n{self.tails()}"
            ) from None
        found = logged()
        assert found is not None
        member, _, epoch = found
        before = [e for _, e in old.leading()]
        assert not before or epoch > max(before), (
            f"{member.name} leads as epoch {epoch}, not past {old.name}'s {max(before)}"
        )
        leader = await self.leader(excluding=[old], timeout=timeout)
        assert leader is member, (
            f"{member.name} logged 'leading as epoch {epoch}' but {leader.name} reports the role"
        )
        return found

    async def leader_ready(self, timeout: float = TAKEOVER_DEADLINE) -> Replica:
        """The leader, once its /readyz is 200: connected to RingCentral, its first snapshot in.
        A follower answers 200 sooner (it serves), but calls made before a leader has its
        baseline would be learned, not seen as changes."""
        leader = await self.leader(timeout=timeout)

        async def ready() -> bool:
            answer = await leader.readiness()
            return answer is not None and answer[0] == 200 and answer[1].get("role") == "leader"

        await wait_until(ready, timeout=timeout, interval=0.05, message=f"{leader.name} ready")
        return leader

    async def settled(self, leader: Replica, timeout: float = 20.0) -> None:
        """The leader has no status write waiting (its /readyz `pending_writes` is 0)."""

        async def idle() -> bool:
            answer = await leader.readiness()
            return answer is not None and answer[1].get("pending_writes") == 0

        await wait_until(idle, timeout=timeout, interval=0.05, message=f"{leader.name} idle")

    def tails(self) -> str:
        return "\n".join(m.tail() for m in self.members)


@contextlib.asynccontextmanager
async def replicas(
    sims: Sims,
    tmp_path: Path,
    database_url: str,
    count: int = 3,
    *,
    started: int | None = None,
    **settings: str,
) -> AsyncIterator[Replicas]:
    """`count` replicas, the first `started` of them (all by default) started and ready; each
    stopped with SIGTERM at the end, which must exit 0 (the logs' tails are added to whatever
    failed)."""
    group = Replicas(sims, tmp_path, database_url, count, **settings)
    try:
        await group.start(started)
        if started != 0:
            await group.leader_ready()
        yield group
    except AssertionError as failed:
        await group.stop()
        if TAIL_MARK in str(failed):
            raise
        raise AssertionError(f"{failed}\n{group.tails()}") from None
    except BaseException:
        await group.stop()
        raise
    codes = await group.stop()
    assert set(codes) <= {0}, f"a replica exited {codes} on SIGTERM\n{group.tails()}"


# ------------------------------------------------------------------ a PostgreSQL of one's own

POSTGRES_BINARIES: Final = Path("/usr/lib/postgresql")
POSTGRES_USER: Final = "postgres"


def postgres_bin() -> Path | None:
    """The newest installed server's bin directory that has initdb and pg_ctl."""
    found = sorted(
        (p for p in POSTGRES_BINARIES.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def cluster_unavailable() -> str | None:
    """Why a private cluster cannot be made here (for a skip), or None."""
    if postgres_bin() is None:
        return f"no PostgreSQL server binaries under {POSTGRES_BINARIES} (initdb, pg_ctl)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(POSTGRES_USER)
        except KeyError:
            return (
                "the tests run as root, initdb refuses root, and there is no "
                f"'{POSTGRES_USER}' user to run a private cluster as"
            )
    return None


class PostgresCluster:
    """A PostgreSQL server of its own, for a test that stops and restarts it: data in a fresh
    temporary directory, its own port on 127.0.0.1, trust authentication, fsync off.

    initdb refuses root, so under root it runs as the `postgres` system user (the owner of the
    machine's own server, which this never touches: another directory, port and socket).
    """

    def __init__(self) -> None:
        binaries = postgres_bin()
        assert binaries is not None, cluster_unavailable()
        self._bin = binaries
        self.port = free_port()
        self._as: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="rcstatus-pg-"))
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", POSTGRES_USER, "--"]
            account = pwd.getpwnam(POSTGRES_USER)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self.data = self.root / "data"
        self.server_log = self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{POSTGRES_USER}@127.0.0.1:{self.port}/postgres"

    async def _run(self, program: str, *args: str) -> None:
        # Through the loop, not subprocess.run: the simulators in this process keep answering.
        process = await asyncio.create_subprocess_exec(
            *self._as, str(self._bin / program), *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await process.communicate()
        if process.returncode != 0:
            log = self.server_log.read_text() if self.server_log.exists() else ""
            raise AssertionError(
                f"{program} {' '.join(args)} exited {process.returncode}: "
                f"{output.decode(errors='replace')}\n{log[-2000:]}"
            )

    async def init(self) -> None:
        await self._run(
            "initdb", "-D", str(self.data), "-U", POSTGRES_USER, "--auth=trust",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip

    async def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        await self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.server_log), "-o", options,
            "-w", "-t", "30", "start",
        )  # fmt: skip

    async def stop(self, mode: str = "fast") -> None:
        """`fast` ends every session at once, as a server that restarts does."""
        await self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    async def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError):
                await self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.asynccontextmanager
async def postgres_cluster() -> AsyncIterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        await cluster.init()
        await cluster.start()
        yield cluster
    finally:
        await cluster.remove()
