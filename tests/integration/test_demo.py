"""`rcstatus-bot demo` as people run it: live view on a terminal, Ctrl-C, the JSON summary."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.cells import cell_len

REPO = Path(__file__).parents[2]
DEADLINE = 60.0
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
TOKEN_PREFIXES = ("xoxb-", "xoxp-", "xapp-", "xoxe-")
JSON_KEYS = {
    "users",
    "presence_events",
    "status_writes",
    "restores",
    "dms_sent",
    "commands",
    "slack_429",
    "mismatches_at_end",
    "stuck_statuses",
    "latency_ms",
    "webhooks_delivered",
    "webhook_p95_ms",
}


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    # TMPDIR shows where the demo's temporary directory went, and that it is gone afterwards.
    return {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(scratch), **extra}


def _demo(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot", "demo", *args]


def _plain(raw: bytes) -> str:
    return ANSI.sub("", raw.decode("utf-8", "replace"))


def _screen_lines(raw: bytes) -> list[str]:
    """Every line the terminal was asked to draw: colours dropped, cursor moves end a line."""
    uncoloured = re.sub(r"\x1b\[[0-9;]*m", "", raw.decode("utf-8", "replace"))
    return re.split(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r|\n", uncoloured)


class Terminal:
    """The demo on a pseudo-terminal, as `make demo` runs it in a real one."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self._master, slave = pty.openpty()
        try:
            self.process = subprocess.Popen(
                command, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd
            )
        finally:
            os.close(slave)
        self.output = b""

    def read_until(self, done: Callable[[str], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.text):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.text[-3000:]}")
            if self._read(0.5) is None:
                raise AssertionError(f"the demo exited before {what}:\n{self.text[-3000:]}")

    def read_to_end(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (got := self._read(0.5)) is not None:
            if not got and self.process.poll() is not None:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the demo did not exit:\n{self.text[-3000:]}")

    def _read(self, wait: float) -> bytes | None:
        """What the demo wrote within `wait` seconds; None once it has closed the terminal."""
        ready, _, _ = select.select([self._master], [], [], wait)
        if not ready:
            return b""
        try:
            chunk = os.read(self._master, 65536)
        except OSError:  # EIO: every holder of the terminal's other end has exited
            return None
        self.output += chunk
        return chunk or None

    @property
    def text(self) -> str:
        return _plain(self.output)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=DEADLINE)
        os.close(self._master)


def _assert_clean(tmp_path: Path, shown: str, logged: str = "") -> None:
    """Nothing broke on screen, no token anywhere, and nothing left behind."""
    assert "Traceback" not in shown, shown[-3000:]
    for prefix in TOKEN_PREFIXES:
        assert prefix not in shown + logged, f"a token ({prefix}…) was printed"
    assert list((tmp_path / "tmp").iterdir()) == [], "the demo left its temporary directory"
    # No configuration is read or written where it runs: no .env, no rcstatus.db.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]


@pytest.mark.slow
def test_ctrl_c_on_the_live_view_prints_the_summary_and_exits_0(tmp_path: Path) -> None:
    env = _environment(tmp_path, COLUMNS="80", LINES="40", TERM="xterm-256color")
    terminal = Terminal(_demo("--users", "10"), env, tmp_path)
    try:
        terminal.read_until(
            lambda text: "Ctrl-C ends the demo" in text and "Slack status" in text,
            DEADLINE,
            "the live view of the running demo",
        )
        terminal.read_until(
            lambda text: "On a call, " in text and "after the call connected" in text,
            DEADLINE,
            "the bot showing a call in Slack, in the live view's event list",
        )
        terminal.process.send_signal(signal.SIGINT)
        terminal.read_to_end(DEADLINE)
        code = terminal.process.wait(timeout=DEADLINE)
    finally:
        terminal.close()
    text = terminal.text
    assert code == 0, text[-3000:]
    summary = text[text.index("rcstatus demo summary") :]
    assert "mismatches at end" in summary
    assert "stuck statuses" in summary
    assert "CALL_DEBOUNCE_SECONDS" in summary
    # The opening act: wording by call type on an external inbound and an internal outbound call.
    flat = " ".join(summary.split())
    assert "On an incoming external call" in flat, summary
    assert "On an outgoing internal call" in flat, summary
    # The demo's receiver got the call as a signed webhook, in the live view and the summary.
    assert "webhook ✓ signed" in text
    assert re.search(r"webhooks delivered\s+[1-9]", summary), summary
    wide = [line for line in _screen_lines(terminal.output) if cell_len(line) > 80]
    assert wide == [], f"lines wider than 80 columns: {wide[:3]}"
    _assert_clean(tmp_path, text)


def test_a_second_ctrl_c_skips_the_wait_and_still_cleans_up(tmp_path: Path) -> None:
    process = subprocess.Popen(
        # Partial bodies: the demo takes the simulator's switches (full bodies by default).
        _demo("--users", "10", "--presence-bodies", "partial"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_environment(tmp_path),
    )
    lines: list[str] = []
    # Reading lines has no timeout of its own: a demo that hangs is killed instead.
    watchdog = threading.Timer(DEADLINE, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        # Without a terminal the demo prints a progress line now and then instead of a view.
        for line in process.stdout:
            lines.append(line)
            if line.startswith("rcstatus demo 0:"):
                process.send_signal(signal.SIGINT)
            if "waiting for the last writes" in line:
                process.send_signal(signal.SIGINT)
                break
        out, err = process.communicate(timeout=DEADLINE)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=DEADLINE)
    text = "".join(lines) + out
    assert process.returncode == 130, text + err
    assert "rcstatus demo summary" in text
    assert "checked before the last writes landed" in " ".join(text.split())
    _assert_clean(tmp_path, text, err)


@pytest.mark.slow
def test_fifty_people_for_thirty_seconds_end_with_nothing_wrong(tmp_path: Path) -> None:
    result = subprocess.run(
        _demo("--users", "50", "--seconds", "30", "--json"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_environment(tmp_path),
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert set(report) == JSON_KEYS
    assert set(report["latency_ms"]) == {"p50", "p95", "p99"}
    assert report["mismatches_at_end"] == 0, result.stdout
    assert report["stuck_statuses"] == 0, result.stdout
    assert report["users"] == 50
    assert report["presence_events"] > 0
    assert report["status_writes"] > 0
    assert report["restores"] > 0
    assert report["commands"] > 0
    # Every "On a call" waited out the call debounce (2 s) first: the raw latency includes it.
    assert report["latency_ms"]["p50"] >= 2000
    # Every change reached the demo's own receiver, signed, through a webhook registered with
    # the API; how long that took is timed from the change.
    assert report["webhooks_delivered"] > 0
    assert report["webhook_p95_ms"] > 0
    # The bot's own warnings go to stderr in this mode; only the report is checked for tracebacks.
    _assert_clean(tmp_path, result.stdout, result.stderr)
