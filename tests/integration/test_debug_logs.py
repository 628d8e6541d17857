"""A DEBUG run of the whole bot through both simulators prints none of the secrets they issued."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from bot.logs import SDK_LOGGERS
from bot.presence import Availability
from bot.roster import PersonChange
from bot.sim.company import Person
from tests.helpers import wait_until
from tests.integration.bot_harness import Sims, connect, simulators
from tests.log_capture import cli_logging

# The line format the CLI installs: "2024-05-01 12:00:00,123 LEVEL logger.name: message".
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) (?P<name>\S+): ")
FORGED_CODE = "7777777777.c0ffee00c0ffee00c0ffee00c0ffee00"
REPO = Path(__file__).parents[2]


class Exploding:
    """A consumer whose first change fails with credentials in the exception's message.

    The kind of message a client library writes (a URL with its token, a response body, an
    Authorization header): the coordinator logs it with its traceback, as any crash would be.
    """

    def __init__(self, sims: Sims) -> None:
        self._sims = sims
        self.raised = False

    async def on_person_change(self, change: PersonChange) -> None:
        if self.raised:
            return
        self.raised = True
        rc_tokens = sorted(self._sims.rc.issued_secrets() - {self._sims.rc.jwt})
        slack = self._sims.slack
        try:
            raise ConnectionError(
                f"GET {self._sims.rc.url}/ws?access_token={rc_tokens[0]} failed: "
                f"Authorization: Bearer {rc_tokens[-1]}"
            )
        except ConnectionError as cause:
            body = {"ok": False, "token": slack.identity.verification_token}
            raise RuntimeError(
                f"{change.user_id}: Slack answered {body} to {slack.bot_token}; "
                f"{json.dumps({'client_secret': slack.client_secret})}"
            ) from cause

    async def on_resync(self) -> None:
        return None


async def _command(sims: Sims, person: Person, text: str) -> dict[str, Any]:
    assert person.slack_id is not None
    return await sims.slack.send_command(
        person.slack_id, "/rcstatus", text, wait=5.0, expect_responses=1
    )


def _reply(outcome: dict[str, Any]) -> str:
    responses = outcome.get("responses") or []
    assert responses, outcome
    return str(responses[-1].get("text", "")) + json.dumps(responses[-1].get("blocks") or [])


async def _rc_links(bot: Bot) -> int:
    _ok, health = await bot.health()
    ringcentral = health["ringcentral"]
    return int(ringcentral["connections"]) + int(ringcentral["recoveries"])


async def _scenario(sims: Sims, bot: Bot, exploding: Exploding) -> None:
    """What people and the platforms do in a day, through every path that can log a secret."""
    alice, bob, carol = sims.people()[:3]
    assert alice.slack_id is not None
    assert bob.slack_id is not None
    assert carol.slack_id is not None
    mention = f"<@{bob.slack_id}>"
    # OAuth: two people connect (codes issued, exchanged, user tokens stored).
    await connect(sims, alice)
    await connect(sims, bob)
    # A forged OAuth callback (a code and state nobody issued).
    async with aiohttp.ClientSession() as session:
        url = f"{sims.app_url}/slack/oauth_redirect?code={FORGED_CODE}&state=forged-state"
        async with session.get(url) as response:
            assert response.status >= 400
    # Slash commands, each with its response_url and the verification token in the form body.
    assert "/slack/install" in _reply(await _command(sims, carol, ""))
    assert "/rcstatus notify" in _reply(await _command(sims, carol, "help"))
    # A call: the status write goes out with bob's user token; the consumer crashes once.
    sims.call(bob, "connected")
    await wait_until(lambda: bot.availability(str(bob.slack_id)) is Availability.ON_CALL)
    await wait_until(lambda: sims.profile(bob)["status_text"] == "On a call", message="status")
    await wait_until(lambda: exploding.raised, message="the consumer's crash")
    # A lookup answers with a Notify button; clicking it is an interactive payload with its own
    # response_url. Then notify from the command too.
    assert "On a call" in _reply(await _command(sims, alice, mention))
    await sims.slack.click(alice.slack_id, "notify_when_free", bob.slack_id, expect_responses=1)
    assert "DM you" in _reply(await _command(sims, carol, f"notify {mention}"))
    # Events: App Home opened, a status set by hand.
    sims.slack.open_app_home(alice.slack_id)
    await wait_until(lambda: alice.slack_id in sims.slack.views(), message="alice's Home")
    sims.slack.set_status(alice.slack_id, "Lunch", ":sandwich:")
    # RingCentral: tokens expire (a refresh), the WebSocket drops (a new WebSocket token).
    sims.rc.expire_tokens()
    before = await _rc_links(bot)
    await sims.rc.drop_sockets()

    async def reconnected() -> bool:
        return await _rc_links(bot) > before

    await wait_until(reconnected, timeout=20, message="the subscriber back after the drop")
    # The call ends: two DMs that bob is free; then alice revokes the app.
    sims.call(bob, "ended")
    await wait_until(lambda: bot.stats().free_dms_sent == 2, timeout=15, message="free DMs")
    sims.slack.revoke(alice.slack_id)
    await wait_until(
        lambda: not sims.slack.user(str(alice.slack_id))["authorized"], message="revoked"
    )
    await bot.settle()


def _records(text: str, log_format: str) -> list[tuple[str, str]]:
    """(level, logger) of each line: text lines by their format, JSON lines each parsed whole."""
    if log_format == "json":
        entries = [json.loads(line) for line in text.splitlines()]  # every line is one object
        return [(entry["level"], entry["logger"]) for entry in entries]
    lines = [LINE.match(line) for line in text.splitlines()]
    return [(m["level"], m["name"]) for m in lines if m is not None]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sdk_debug", "log_format"),
    [(False, "text"), (True, "json")],
    ids=["debug", "debug-with-sdk-as-json"],
)
async def test_a_debug_run_logs_none_of_the_issued_secrets(
    tmp_path: Path, sdk_debug: bool, log_format: str
) -> None:
    with cli_logging("DEBUG", sdk_debug=sdk_debug, log_format=log_format) as out:
        async with simulators() as sims:
            exploding = Exploding(sims)
            settings = sims.settings(tmp_path / "bot.db", PORT=str(sims.port), SLACK_APP_TOKEN="")
            bot = await Bot.create(settings, consumers=[exploding])
            try:
                await bot.start()
                await wait_until(lambda: bot.ready, timeout=20, message="first snapshot")
                await _scenario(sims, bot, exploding)
            finally:
                await bot.stop()
            secrets = {*sims.rc.issued_secrets(), *sims.slack.issued_secrets(), FORGED_CODE}
    text = out.getvalue()
    records = _records(text, log_format)

    # Not vacuous: the run logged plenty, at DEBUG, and every kind of secret was issued.
    assert len(records) > (300 if sdk_debug else 15), text[-3000:]
    assert any(level == "DEBUG" and name.startswith("bot.") for level, name in records)
    assert len([s for s in secrets if s.startswith("xoxp-")]) >= 2
    assert len(secrets) > 20
    # The crash was logged with its traceback and its cause, both redacted.
    assert "a presence consumer failed on a change" in text
    assert "Traceback (most recent call last)" in text
    assert "The above exception was the direct cause" in text
    assert "RuntimeError: " in text
    assert "[redacted]" in text

    leaked = sorted(secret for secret in secrets if secret in text)
    assert leaked == [], f"{len(leaked)} issued secrets reached the log"

    def from_a_library(name: str) -> bool:
        # Bolt logs through the logger we give it, which is named under slack_bolt.
        return any(name == sdk or name.startswith(sdk + ".") for sdk in SDK_LOGGERS)

    library_debug = [name for level, name in records if level == "DEBUG" and from_a_library(name)]
    if sdk_debug:
        # The opt-in shows what the SDKs say, request bodies and all, still redacted.
        assert library_debug, "no SDK DEBUG line with --sdk-debug"
    else:
        assert library_debug == [], sorted(set(library_debug))


async def _healthy(sims: Sims) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(sims.app_url + "/readyz") as response,
        ):
            return response.status == 200
    except aiohttp.ClientError:
        return False


@pytest.mark.slow
async def test_rcstatus_bot_run_at_debug_with_the_sdks_prints_no_issued_secret(
    tmp_path: Path,
) -> None:
    """The command itself: `LOG_LEVEL=debug LOG_FORMAT=json rcstatus-bot --sdk-debug run`, as a
    container would start it, its stderr read line by line as JSON."""
    async with simulators() as sims:
        env = sims.env(tmp_path / "bot.db", PORT=str(sims.port), SLACK_APP_TOKEN="")
        env_file = tmp_path / "bot.env"
        env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
        stderr = tmp_path / "stderr.log"
        with stderr.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "--sdk-debug", "run", "--env-file", str(env_file),
                cwd=tmp_path,
                env={
                    "PATH": os.environ.get("PATH", ""),
                    "PYTHONPATH": str(REPO),
                    "LOG_LEVEL": "debug",
                    "LOG_FORMAT": "json",
                },
                stdout=asyncio.subprocess.DEVNULL,
                stderr=sink,
            )  # fmt: skip
        try:
            await wait_until(lambda: _healthy(sims), timeout=30, message="the bot process")
            alice, bob = sims.people()[:2]
            await connect(sims, alice)
            assert "Available" in _reply(await _command(sims, bob, f"<@{alice.slack_id}>"))
            sims.call(alice, "connected")
            await wait_until(
                lambda: sims.profile(alice)["status_text"] == "On a call", message="status"
            )
            secrets = {*sims.rc.issued_secrets(), *sims.slack.issued_secrets()}
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), timeout=30)
    text = stderr.read_text()
    assert code == 0, text[-3000:]
    records = _records(text, "json")
    assert len(records) > 300, text[-3000:]
    assert any(level == "DEBUG" and name.startswith("slack_") for level, name in records)
    # One INFO line per status write, with the person's id and never the status text.
    assert '"message": "status written for ' + str(alice.slack_id) in text
    leaked = sorted(secret for secret in secrets if secret in text)
    assert leaked == [], f"{len(leaked)} issued secrets reached the log"
