"""Configuration mistakes as an operator makes them: one line that says what to do, exit 78."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import describe_settings
from bot.errors import EX_CONFIG
from tests.integration import bot_harness

REPO = Path(__file__).parents[2]
DEADLINE = 60.0


def rcstatus_bot(cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The command line in a clean environment: no setting leaks in from the test run."""
    settings = {variable for variable, _, _ in describe_settings()}
    clean = {k: v for k, v in os.environ.items() if k not in settings}
    return subprocess.run(
        [sys.executable, "-m", "bot", *arguments],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(REPO)},
    )


def one_line(result: subprocess.CompletedProcess[str], status: int = EX_CONFIG) -> str:
    """The one line on stderr; 78 (EX_CONFIG) for a setting to fix, 2 for what may pass."""
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if " INFO " not in line]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["run", "doctor"])
def test_a_mistyped_env_file_is_an_error_not_an_empty_configuration(
    tmp_path: Path, command: str
) -> None:
    (tmp_path / "sim.env").write_text("PORT=3000\n", encoding="utf-8")
    line = one_line(rcstatus_bot(tmp_path, command, "--env-file", "sim.emv"))
    assert line.startswith(
        "rcstatus cannot start: --env-file sim.emv: no such file; check the path"
    )


def test_env_example_copied_unchanged_names_the_placeholder(tmp_path: Path) -> None:
    shutil.copy(REPO / ".env.example", tmp_path / ".env")
    line = one_line(rcstatus_bot(tmp_path, "run"))
    assert line.startswith(
        "rcstatus cannot start: SLACK_BOT_TOKEN is still the placeholder from .env.example; "
        "copy it from OAuth & Permissions → Bot User OAuth Token"
    )


def test_a_busy_port_is_one_line_before_anything_logs_in(tmp_path: Path) -> None:
    with socket.socket() as services, socket.socket() as taken:
        # Stands in for RingCentral and Slack: a start that logged in first would connect here.
        services.bind(("127.0.0.1", 0))
        services.listen()
        services.setblocking(False)
        url = f"http://127.0.0.1:{services.getsockname()[1]}"
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "bot.env").write_text(
            f"RC_SERVER_URL={url}\nRC_CLIENT_ID=id\nRC_CLIENT_SECRET=secret\nRC_JWT=jwt\n"
            f"SLACK_API_URL={url}/api/\nSLACK_BOT_TOKEN=xoxb-1-2-abc\nSLACK_APP_TOKEN=xapp-1-abc\n"
            f"HOST=127.0.0.1\nPORT={port}\n",
            encoding="utf-8",
        )
        # 2, not 78: the port may be free by the time a supervisor tries again.
        line = one_line(rcstatus_bot(tmp_path, "run", "--env-file", "bot.env"), status=2)
        with pytest.raises(BlockingIOError):
            services.accept()
    assert line == (
        f"PORT {port} on 127.0.0.1 is already in use (another rcstatus-bot, or another "
        "program); stop it, or set PORT to a free port"
    )


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("SLACK_APP_TOKEN", "xapp-1-A0-1-notarealtoken", "SLACK_APP_TOKEN was refused by Slack"),
        ("RC_JWT", "eyJhbGciOi.not-a-jwt", "RC_JWT was refused (invalid_grant)"),
    ],
)
async def test_a_refused_credential_ends_the_start_in_one_line(
    tmp_path: Path, setting: str, value: str, says: str
) -> None:
    """Against the simulators: Bolt would retry a refused app token forever, a traceback each
    time; a refused JWT used to end in RingCentral's words, naming no setting."""
    async with bot_harness.simulators(users=4) as sims:
        bot_harness.write_env(sims, tmp_path, **{setting: value})
        result = await asyncio.to_thread(rcstatus_bot, tmp_path, "run", "--env-file", "bot.env")
    line = one_line(result)
    assert line.startswith(f"rcstatus cannot start: {says}")
    assert value not in line


@pytest.mark.slow
async def test_a_second_run_on_the_same_sqlite_file_is_refused_naming_postgresql(
    tmp_path: Path,
) -> None:
    """Two bots on one SQLite file would both subscribe and both write every status."""
    async with bot_harness.simulators(users=4) as sims:
        env_file = bot_harness.write_env(sims, tmp_path)
        first = bot_harness.BotProcess(sims, env_file)
        await first.start()
        try:
            second = tmp_path / "second"
            second.mkdir()
            database = tmp_path / "bot.db"
            text = env_file.read_text(encoding="utf-8").replace(
                f"PORT={sims.port}", f"PORT={bot_harness.free_port()}"
            )
            (second / "bot.env").write_text(text, encoding="utf-8")
            result = await asyncio.to_thread(rcstatus_bot, second, "run", "--env-file", "bot.env")
            line = one_line(result, status=2)
        finally:
            assert await first.terminate() == 0
    assert f"already running on the SQLite file {database.resolve()}" in line
    assert "point DATABASE_URL at PostgreSQL to run several replicas" in line
    # The first went on leading: it was the only one RingCentral ever saw.
    assert sims.rc.stats()["logins"] == 1
