"""The `rcstatus-bot` command line: parses arguments and runs the chosen subcommand."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import logging
import math
import signal
import sys
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from bot.api.admin import create_key, list_keys, revoke_key
from bot.api.keys import Scope
from bot.app import run_bot
from bot.config import Settings, log_settings
from bot.demo import DEFAULT_TIME_SCALE, DEFAULT_USERS, DemoOptions, run_demo
from bot.doctor import diagnose_environment, render
from bot.errors import EX_CONFIG, BotError, ConfigError
from bot.logs import configure_logging
from bot.sim.company import build_company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral import RingCentralSimulator
from bot.sim.slack import SlackSimulator
from bot.store import Store

log = logging.getLogger("rcstatus.cli")

DEFAULT_ENV_FILE = Path(".env")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rcstatus-bot",
        description="RingCentral phone presence in Slack.",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log (default: LOG_LEVEL from the environment, else INFO)",
    )
    parser.add_argument(
        "--sdk-debug",
        action="store_true",
        help="with --log-level DEBUG, show the Slack, RingCentral, HTTP and database libraries' "
        "DEBUG lines too (kept at INFO otherwise); credentials are redacted either way",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the bot against RingCentral and Slack",
        description=(
            "Run the bot with the settings from the environment and .env: the presence "
            "subscription, the status sync and the Slack app, until SIGTERM or Ctrl-C."
        ),
    )
    _add_env_file(run)

    doctor = commands.add_parser(
        "doctor",
        help="check the configuration against RingCentral, Slack and the database",
        description=(
            "Check the settings, RingCentral's login and permissions, Slack's tokens and scopes, "
            "Socket Mode or the request URL, the database and who is linked; print each finding "
            "with its fix. Exits 1 when the bot cannot work, 0 otherwise (warnings do not fail)."
        ),
    )
    _add_env_file(doctor)
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")

    api_key = commands.add_parser(
        "api-key",
        help="create, list or revoke keys for the availability API",
        description=(
            "Keys let other systems read availability under /api/v1. A key is shown once, "
            "when it is created; the database keeps only its hash."
        ),
    )
    _add_env_file(api_key)
    key_commands = api_key.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    create = key_commands.add_parser("create", help="make a key and print it once")
    create.add_argument("--name", required=True, help="who or what uses it, e.g. call-router")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=[scope.value for scope in Scope],
        help="what it may do; repeat for several",
    )
    create.add_argument("--json", action="store_true", help="print id, name, key, scopes as JSON")
    listing = key_commands.add_parser("list", help="every key, never the keys themselves")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    revoke = key_commands.add_parser("revoke", help="stop a key working, at once")
    revoke.add_argument("id", help="the key's id, as list shows it (key_…)")

    sim = commands.add_parser(
        "sim",
        help="run the RingCentral and Slack simulators",
        description=(
            "Start both simulators with a synthetic company, write an env file the bot can use "
            "unchanged, print one JSON line with their URLs, and run until interrupted."
        ),
    )
    sim.add_argument("--users", type=_positive_int, default=25, help="people on both sides")
    sim.add_argument("--seed", type=int, default=1, help="seed of the synthetic company")
    sim.add_argument("--host", default="127.0.0.1", help="address both simulators bind")
    sim.add_argument("--rc-port", type=_port, default=8901, help="RingCentral simulator port")
    sim.add_argument("--slack-port", type=_port, default=8902, help="Slack simulator port")
    sim.add_argument(
        "--app-url",
        default="http://127.0.0.1:3000",
        help="where the bot's HTTP endpoints live (OAuth redirect, request URL)",
    )
    sim.add_argument(
        "--time-scale",
        type=_positive_float,
        default=1.0,
        help="divide every enforced duration (rate windows, TTLs, timeouts) by this factor",
    )
    sim.add_argument(
        "--env-file",
        type=Path,
        default=Path("sim.env"),
        help="where to write the bot's settings for these simulators (default sim.env)",
    )
    _add_rc_switches(sim)

    demo = commands.add_parser(
        "demo",
        help="run the bot against both simulators with a live view",
        description=(
            "Start both simulators and the real bot wired to them, connect most people through "
            "Slack's OAuth page, play calls, meetings, DND, statuses set by hand and /rcstatus "
            "commands, and show each person's phone beside their Slack status. Ctrl-C (or the "
            "end of --seconds) ends every call, waits for the last writes and prints a summary. "
            "Only the bot's warnings are shown."
        ),
    )
    demo.add_argument(
        "--users",
        type=_positive_int,
        default=DEFAULT_USERS,
        help=f"people on both sides (default {DEFAULT_USERS})",
    )
    demo.add_argument(
        "--seconds", type=_positive_float, help="stop after this long (default: at Ctrl-C)"
    )
    demo.add_argument(
        "--time-scale",
        type=_positive_float,
        default=DEFAULT_TIME_SCALE,
        help="divide every duration the simulators enforce by this factor "
        f"(default {DEFAULT_TIME_SCALE:g}: Slack's rate minute lasts 15 s)",
    )
    demo.add_argument("--seed", type=int, default=1, help="seed of the company and its day")
    demo.add_argument(
        "--json", action="store_true", help="no live view: print one JSON summary at the end"
    )
    _add_rc_switches(demo)
    return parser


def _add_env_file(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--env-file",
        type=Path,
        help="settings file read under the environment (default .env, if there is one; "
        "a file named here must exist)",
    )


def settings_file(named: Path | None) -> Path:
    """The settings file to read: .env when there is one, or the file --env-file names, which
    must exist (a mistyped name would otherwise leave every setting silently unset)."""
    if named is None:
        return DEFAULT_ENV_FILE
    if not named.is_file():
        raise ConfigError(
            [
                f"--env-file {named}: no such file; check the path, or leave --env-file out "
                f"to read {DEFAULT_ENV_FILE} (if present) and the environment"
            ]
        )
    return named


def _add_rc_switches(command: argparse.ArgumentParser) -> None:
    """Where RingCentral's guide and practice disagree; the defaults are the guide's."""
    command.add_argument(
        "--presence-bodies",
        choices=["full", "partial"],
        default="full",
        help="RingCentral notifications carry the whole presence (default) or only what changed",
    )
    command.add_argument(
        "--ws-token-ttl",
        type=_positive_float,
        default=30.0,
        help="lifetime of a RingCentral WebSocket token in seconds (default 30)",
    )
    command.add_argument(
        "--ws-token-reusable",
        action="store_true",
        help="a WebSocket token may open any number of sockets until it expires (default: once)",
    )
    command.add_argument(
        "--replay-delay",
        type=_non_negative_float,
        default=0.0,
        help="seconds between a recovery's ConnectionDetails and the replay of missed events",
    )


def _rc_switches(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of RingCentralSimulator for the switch flags."""
    return {
        "presence_bodies": args.presence_bodies,
        "ws_token_ttl": args.ws_token_ttl,
        "ws_token_single_use": not args.ws_token_reusable,
        "replay_delay": args.replay_delay,
    }


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a whole number above 0")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a number above 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError("must be a number of 0 or more")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError("must be a port between 0 and 65535 (0 picks a free one)")
    return value


def run_cli(argv: Sequence[str], out: TextIO = sys.stdout) -> int:
    args = build_parser().parse_args(argv)
    try:
        env_level, log_format = log_settings()
    except BotError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    level = args.log_level or env_level.upper()
    configure_logging(level, sdk_debug=args.sdk_debug, log_format=log_format)
    try:
        if args.command == "run":
            settings = Settings.from_env(env_file=settings_file(args.env_file))
            return asyncio.run(_run_until_signalled(settings))
        if args.command == "doctor":
            if level == "INFO":
                # The report is the output; the clients' progress lines would only clutter it.
                logging.getLogger().setLevel(logging.WARNING)
            report = asyncio.run(diagnose_environment(settings_file(args.env_file)))
            out.write(report.as_json() + "\n" if args.json else render(report))
            return report.exit_code
        if args.command == "api-key":
            settings = Settings.from_env(env_file=settings_file(args.env_file))
            return asyncio.run(_api_key(args, settings, out))
        if args.command == "sim":
            return asyncio.run(run_simulators(args, out))
        if args.command == "demo":
            options = DemoOptions(
                args.users,
                args.seconds,
                args.time_scale,
                args.json,
                args.seed,
                rc_switches=_rc_switches(args),
            )
            return asyncio.run(run_demo(options, out))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EX_CONFIG
    except BotError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {args.command}")


async def _api_key(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    store = Store(settings.database_url)
    await store.open()
    try:
        if args.key_command == "create":
            return await create_key(store, args.name, args.scope, out, as_json=args.json)
        if args.key_command == "list":
            return await list_keys(store, out, as_json=args.json)
        return await revoke_key(store, args.id, out)
    finally:
        await store.close()


async def _run_until_signalled(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await run_bot(settings, stop)
    return 0


def simulator_env(
    rc: RingCentralSimulator, slack: SlackSimulator, *, app_url: str, time_scale: TimeScale
) -> dict[str, str]:
    """The settings that point an unmodified bot at these simulators."""
    app_port = urlsplit(app_url).port or 3000
    return {
        "RC_SERVER_URL": rc.url,
        "RC_CLIENT_ID": rc.client_id,
        "RC_CLIENT_SECRET": rc.client_secret,
        "RC_JWT": rc.jwt,
        # Keeps RingCentral's session across restarts; derived from the simulated app's
        # secret so every env file written for these simulators opens the same stored session.
        "RINGCENTRAL_TOKEN_KEY": base64.urlsafe_b64encode(
            hashlib.sha256(f"token-key:{rc.client_secret}".encode()).digest()
        ).decode(),
        "SLACK_API_URL": slack.url + "/api/",
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_CLIENT_ID": slack.client_id,
        "SLACK_CLIENT_SECRET": slack.client_secret,
        "PORT": str(app_port),
        "HOST": urlsplit(app_url).hostname or "127.0.0.1",
        # The simulators run Slack's and RingCentral's clocks faster; the bot's budgets follow.
        "TIME_SCALE": f"{time_scale.factor:g}",
        "STATUS_TTL_SECONDS": f"{time_scale.seconds(3600):g}",
        "FREE_DEBOUNCE_SECONDS": f"{time_scale.seconds(20):g}",
        "PUBLIC_URL": app_url,
        # Every simulated person connects from this one machine.
        "INSTALL_REQUESTS_PER_MINUTE": "0",
        # Webhook receivers for the simulated company run on this machine too.
        "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
    }


def write_env_file(path: Path, env: dict[str, str]) -> None:
    lines = [
        "# Written by `rcstatus-bot sim`: settings that point the bot at the simulators.",
        "# Remove SLACK_APP_TOKEN to use HTTP mode (requests signed with SLACK_SIGNING_SECRET).",
    ]
    lines += [f"{key}={value}" for key, value in env.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


async def run_simulators(args: argparse.Namespace, out: TextIO) -> int:
    company = build_company(args.users, args.seed)
    time_scale = TimeScale(args.time_scale)
    rc = RingCentralSimulator(
        company,
        time_scale=time_scale,
        host=args.host,
        port=args.rc_port,
        **_rc_switches(args),
    )
    slack = SlackSimulator(
        company, time_scale=time_scale, host=args.host, port=args.slack_port, app_url=args.app_url
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await _start(rc.start(), "RingCentral", args.rc_port)
        await _start(slack.start(), "Slack", args.slack_port)
        env = simulator_env(rc, slack, app_url=args.app_url, time_scale=time_scale)
        write_env_file(args.env_file, env)
        ready = {
            "ringcentral_url": rc.url,
            "slack_url": slack.url,
            "slack_api_url": env["SLACK_API_URL"],
            "ringcentral_control": rc.url + "/_sim/",
            "slack_control": slack.url + "/_sim/",
            "env_file": str(args.env_file),
            "users": args.users,
            "seed": args.seed,
            "time_scale": args.time_scale,
            "app_url": args.app_url,
            "ringcentral_switches": rc.switches(),
        }
        print(json.dumps(ready), file=out, flush=True)
        log.info("simulators running; Ctrl-C to stop")
        await stop.wait()
        log.info("stopping simulators")
    finally:
        await slack.stop()
        await rc.stop()
    return 0


async def _start(starting: Awaitable[None], name: str, port: int) -> None:
    try:
        await starting
    except OSError as exc:
        raise BotError(f"cannot start the {name} simulator on port {port}: {exc.strerror}") from exc
