"""/readyz follows the database: a throwaway PostgreSQL cluster stops and starts under the bot."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import wait_until
from tests.integration.bot_harness import free_port, running_bot, simulators


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _runner() -> list[str] | None:
    """How to run PostgreSQL's tools: as ourselves, or (initdb refuses root) as `postgres`."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return [runuser, "-u", "postgres", "--"] if runuser else None


BIN = _postgres_bin()
RUNNER = _runner()
pytestmark = [
    pytest.mark.skipif(BIN is None, reason="initdb is not installed (PostgreSQL server binaries)"),
    pytest.mark.skipif(
        RUNNER is None, reason="running as root without a postgres user to run initdb as"
    ),
]


class Cluster:
    """A PostgreSQL cluster of our own: own directory, own port, own socket directory."""

    def __init__(self, bin_dir: Path, runner: list[str], root: Path) -> None:
        self._bin = bin_dir
        self._runner = runner
        self._data = root / "data"
        self._log = root / "postgres.log"
        self._root = root
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    async def _run(self, tool: str, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            *self._runner, str(self._bin / tool), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, f"{tool} failed: {out.decode(errors='replace')}"

    async def init(self) -> None:
        await self._run("initdb", "-D", str(self._data), "-U", "postgres", "-A", "trust", "-N")

    async def start(self) -> None:
        options = f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 -c fsync=off"
        await self._run("pg_ctl", "-D", str(self._data), "-l", str(self._log), "-o", options,
                        "-w", "start")  # fmt: skip

    async def stop(self, mode: str = "fast") -> None:
        await self._run("pg_ctl", "-D", str(self._data), "-m", mode, "-w", "stop")


@contextlib.asynccontextmanager
async def throwaway_cluster() -> AsyncIterator[Cluster]:
    assert BIN is not None
    assert RUNNER is not None
    root = Path(tempfile.mkdtemp(prefix="rcstatus-pg-"))
    if RUNNER:
        record = pwd.getpwnam("postgres")
        os.chown(root, record.pw_uid, record.pw_gid)
    cluster = Cluster(BIN, RUNNER, root)
    try:
        await cluster.init()
        await cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(AssertionError, TimeoutError):
            await cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
async def test_readyz_says_503_naming_the_database_while_it_is_down(tmp_path: Path) -> None:
    async with (
        throwaway_cluster() as cluster,
        simulators() as sims,
        running_bot(sims, tmp_path / "unused.db", DATABASE_URL=cluster.url) as bot,
        aiohttp.ClientSession() as session,
    ):
        assert "PostgreSQL" in bot.store.location
        url = sims.app_url + "/readyz"

        async def health() -> tuple[int, Any]:
            async with session.get(url) as response:
                return response.status, await response.json()

        async def status_is(expected: int) -> bool:
            return (await health())[0] == expected

        await wait_until(lambda: status_is(200), message="a healthy bot")
        assert (await health())[1]["store"] == {"ok": True}

        await cluster.stop()
        await wait_until(lambda: status_is(503), timeout=15, message="/readyz to notice")
        status, details = await health()
        assert status == 503
        reason = details["store"]["reason"]
        assert details["store"]["ok"] is False
        assert f"PostgreSQL at postgres@127.0.0.1:{cluster.port}" in reason, reason
        assert details["ringcentral"]["state"] == "connected"  # only the database is down
        assert "the database: " in details["reason"], details
        # Liveness does not follow the database: restarting the bot would not bring it back.
        async with session.get(sims.app_url + "/healthz") as response:
            assert response.status == 200

        await cluster.start()
        await wait_until(lambda: status_is(200), timeout=15, message="/readyz to recover")
        assert (await health())[1]["store"] == {"ok": True}
