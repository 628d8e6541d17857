"""`rcstatus-bot sim` as a user runs it: prints its URLs, writes an env file, stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings

DEADLINE = 60.0


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
        return json.load(response)


def test_sim_prints_urls_writes_env_and_stops_cleanly(tmp_path: Path) -> None:
    env_file = tmp_path / "sim.env"
    command = [
        sys.executable, "-m", "bot", "sim", "--users", "50", "--rc-port", "0", "--slack-port", "0",
        "--env-file", str(env_file), "--time-scale", "60",
        "--presence-bodies", "partial", "--ws-token-reusable", "--ws-token-ttl", "600",
        "--replay-delay", "5",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else "no output"
        ready = json.loads(line)
        assert ready["ringcentral_url"].startswith("http://127.0.0.1:")
        assert ready["slack_url"].startswith("http://127.0.0.1:")

        settings = Settings.from_env({}, env_file=env_file)
        assert settings.missing_for_run() == []
        assert settings.rc_server_url == ready["ringcentral_url"]
        assert settings.slack_api_url == ready["slack_url"] + "/api/"
        assert settings.rate_window_seconds == pytest.approx(1.0)
        assert oct(env_file.stat().st_mode & 0o777) == "0o600"

        extensions = _get(ready["ringcentral_control"] + "extensions")
        users = _get(ready["slack_control"] + "users")["users"]
        rc_emails = {e["email"].lower() for e in extensions if e["type"] == "User"}
        slack_emails = {u["email"] for u in users}
        assert len(rc_emails & slack_emails) == 50

        switches = {
            "presence_bodies": "partial",
            "ws_token_ttl": 600.0,
            "ws_token_single_use": False,
            "replay_delay": 5.0,
        }
        assert ready["ringcentral_switches"] == switches
        assert _get(ready["ringcentral_control"] + "switches") == switches
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=DEADLINE)
        finally:
            if process.poll() is None:
                process.kill()
    assert code == 0


def test_sim_reports_a_taken_port_clearly(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "bot", "sim", "--rc-port", str(port), "--slack-port", "0",
             "--env-file", str(tmp_path / "x.env")],
            capture_output=True, text=True, timeout=DEADLINE, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )  # fmt: skip
    assert result.returncode == 2
    assert f"cannot start the RingCentral simulator on port {port}" in result.stderr
    assert "Traceback" not in result.stderr
