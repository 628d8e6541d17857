"""Typed settings from the environment and an optional .env file; the only reader of os.environ."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from dotenv import dotenv_values

from bot.errors import ConfigError

RC_CONSOLE: Final = "the RingCentral Developer Console (https://developers.ringcentral.com/console)"
SLACK_APP_PAGE: Final = "your Slack app's page (https://api.slack.com/apps)"
DEFAULT_DATABASE_FILE: Final = "rcstatus.db"


class Secret:
    """A credential that never shows itself in repr, str or logs; `reveal()` is the only way out."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


# Values .env.example and manifest.yml show as placeholders: copied unchanged, they are refused
# with a message saying so, rather than failing later at login or in someone's browser.
PLACEHOLDERS: Final = frozenset(
    {
        "xoxb-",
        "xoxp-",
        "xapp-",
        "https://rcstatus.example.com",
        "postgresql+asyncpg://rcstatus@db.internal/rcstatus",
    }
)


def _url(example: str) -> Callable[[str], str]:
    """An http(s) URL; the example shown is the kind of address this setting wants."""

    def parse(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or "<" in value:
            raise ValueError(f"expected an http(s) URL such as {example}")
        return value

    return parse


def _api_url(value: str) -> str:
    _url("https://slack.com/api/")(value)
    return value if value.endswith("/") else value + "/"


def _whole(value: str, expected: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(expected) from None


def _number(value: str, expected: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(expected) from None
    if not math.isfinite(number):
        raise ValueError(expected)
    return number


def _port(value: str) -> int:
    expected = "expected a whole number from 0 to 65535 (0 picks a free port)"
    port = _whole(value, expected)
    if not 0 <= port <= 65535:
        raise ValueError(expected)
    return port


def _positive_int(value: str) -> int:
    expected = "expected a whole number above 0"
    number = _whole(value, expected)
    if number <= 0:
        raise ValueError(expected)
    return number


def _non_negative_int(value: str) -> int:
    expected = "expected a whole number, 0 or more"
    number = _whole(value, expected)
    if number < 0:
        raise ValueError(expected)
    return number


def _proxy_hops(value: str) -> int:
    expected = (
        "expected how many reverse proxies that add X-Forwarded-For stand in front of the "
        "bot: 0 (none, the default), 1 (for example one load balancer), 2, … up to 10"
    )
    hops = _whole(value, expected)
    if not 0 <= hops <= 10:
        raise ValueError(expected)
    return hops


def _positive_float(value: str) -> float:
    expected = "expected a number above 0, such as 1 or 0.5"
    number = _number(value, expected)
    if not number > 0:
        raise ValueError(expected)
    return number


def _non_negative_float(value: str) -> float:
    expected = "expected a number of seconds, 0 or more, such as 2 or 0.5"
    number = _number(value, expected)
    if number < 0:
        raise ValueError(expected)
    return number


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _id_list(value: str) -> tuple[str, ...]:
    ids = tuple(part.strip() for part in value.split(",") if part.strip())
    if not all(part.isdigit() for part in ids):
        raise ValueError("expected extension ids (digits) separated by commas")
    return ids


def _prefixed(*prefixes: str) -> Callable[[str], Secret]:
    def parse(value: str) -> Secret:
        # The prefix alone is .env.example's placeholder, caught before parsing; a space means
        # two values ran together or a comment was pasted along.
        if not value.startswith(prefixes) or value in prefixes or any(c.isspace() for c in value):
            raise ValueError(f"expected a token starting with {' or '.join(prefixes)}")
        return Secret(value)

    return parse


def _database_url(value: str) -> str:
    if "://" not in value:
        raise ValueError(
            "expected a database URL such as postgresql://user:password@host:5432/rcstatus "
            "or sqlite+aiosqlite:///rcstatus.db"
        )
    scheme = value.split("://", 1)[0]
    if scheme in ("postgres", "postgresql"):
        # Hosting platforms hand out plain postgres:// URLs; the async engine needs a driver.
        return "postgresql+asyncpg://" + value.split("://", 1)[1]
    return value


def _fernet_key(value: str) -> Secret:
    try:
        Fernet(value)
    except ValueError:
        raise ValueError(
            "expected a Fernet key: 32 random bytes in URL-safe base64 (44 characters); make one "
            "with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        ) from None
    return Secret(value)


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.lower() not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value.lower()

    return parse


def _env(
    name: str,
    source: str,
    parse: Callable[[str], Any] = str,
    *,
    default: Any = None,
    copied: bool = False,
) -> Any:
    """Declare a setting: its variable, where its value comes from, how to parse it.

    `copied` settings are copied from a console page (`source` says which); the others are
    choices, and `source` says what they mean.
    """
    return field(
        default=default,
        metadata={"env": name, "source": source, "parse": parse, "copied": copied},
    )


def _fix(spec: Field[Any]) -> str:
    """Where a valid value for this setting comes from, as the end of a problem's sentence."""
    meta = spec.metadata
    if meta["copied"]:
        return f"copy it from {meta['source']}"
    if spec.default is None or spec.default == ():
        return f"it sets {meta['source']}"
    return f"it sets {meta['source']}; leave it unset for the default ({_shown(spec.default)})"


def _shown(default: Any) -> str:
    return f"{default:g}" if isinstance(default, float) else str(default)


def _problem(spec: Field[Any], what: str) -> str:
    """One line: the variable, what is wrong with it, then (after the first '; ') the fix."""
    return f"{spec.metadata['env']} {what}; {_fix(spec)}."


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the bot can be told; credentials are `Secret`s and nothing changes after start."""

    rc_server_url: str = _env(
        "RC_SERVER_URL",
        "RingCentral's API server; keep the default unless you use a partner brand",
        _url("https://platform.ringcentral.com"),
        default="https://platform.ringcentral.com",
    )
    rc_client_id: str | None = _env(
        "RC_CLIENT_ID", f"the app's Credentials page in {RC_CONSOLE}", copied=True
    )
    rc_client_secret: Secret | None = _env(
        "RC_CLIENT_SECRET", f"the app's Credentials page in {RC_CONSOLE}", Secret, copied=True
    )
    rc_jwt: Secret | None = _env(
        "RC_JWT",
        f"Credentials → JWT credentials in {RC_CONSOLE} (create one for this app)",
        Secret,
        copied=True,
    )
    slack_bot_token: Secret | None = _env(
        "SLACK_BOT_TOKEN",
        f"OAuth & Permissions → Bot User OAuth Token on {SLACK_APP_PAGE}",
        _prefixed("xoxb-"),
        copied=True,
    )
    slack_app_token: Secret | None = _env(
        "SLACK_APP_TOKEN",
        f"Basic Information → App-Level Tokens (scope connections:write) on {SLACK_APP_PAGE}; "
        "set it to use Socket Mode, leave it empty for HTTP mode",
        _prefixed("xapp-"),
        copied=True,
    )
    slack_signing_secret: Secret | None = _env(
        "SLACK_SIGNING_SECRET",
        f"Basic Information → Signing Secret on {SLACK_APP_PAGE}",
        Secret,
        copied=True,
    )
    slack_client_id: str | None = _env(
        "SLACK_CLIENT_ID",
        f"Basic Information → App Credentials → Client ID on {SLACK_APP_PAGE}",
        copied=True,
    )
    slack_client_secret: Secret | None = _env(
        "SLACK_CLIENT_SECRET",
        f"Basic Information → App Credentials → Client Secret on {SLACK_APP_PAGE}",
        Secret,
        copied=True,
    )
    slack_api_url: str = _env(
        "SLACK_API_URL",
        "Slack's Web API base; keep the default unless you run the simulator",
        _api_url,
        default="https://slack.com/api/",
    )
    database_url: str = _env(
        "DATABASE_URL",
        "your database: PostgreSQL in production (postgres:// URLs work as they are), or unset "
        "for a SQLite file in the working directory",
        _database_url,
        default=f"sqlite+aiosqlite:///{DEFAULT_DATABASE_FILE}",
    )
    port: int = _env(
        "PORT",
        "the port the bot's HTTP endpoints listen on (your platform may set it)",
        _port,
        default=3000,
    )
    host: str = _env(
        "HOST",
        "the address the bot's HTTP endpoints bind (0.0.0.0 for every interface)",
        str,
        default="0.0.0.0",
    )
    time_scale: float = _env(
        "TIME_SCALE",
        "only for the simulators, which can run Slack's and RingCentral's clocks faster: how many "
        "times faster (their minute lasts 60/TIME_SCALE real seconds); keep 1 with the real "
        "services",
        _positive_float,
        default=1.0,
    )
    slack_profile_writes_per_minute: int = _env(
        "SLACK_PROFILE_WRITES_PER_MINUTE",
        "Slack's Tier 3 limit for users.profile.set per workspace",
        _positive_int,
        default=50,
    )
    slack_writes_per_profile_per_minute: int = _env(
        "SLACK_WRITES_PER_PROFILE_PER_MINUTE",
        "Slack's limit of profile updates per user per token",
        _positive_int,
        default=10,
    )
    slack_admin_profiles_per_minute: int = _env(
        "SLACK_ADMIN_PROFILES_PER_MINUTE",
        "Slack's limit of distinct profiles one admin token may set",
        _positive_int,
        default=30,
    )

    presence_snapshot_seconds: float = _env(
        "PRESENCE_SNAPSHOT_SECONDS",
        "how often everyone's presence is re-read over REST as a safety net (the WebSocket "
        "subscription carries every change in between)",
        _positive_float,
        default=600.0,
    )
    directory_refresh_seconds: float = _env(
        "DIRECTORY_REFRESH_SECONDS",
        "how often the RingCentral user list is re-read (it is also re-read on change events)",
        _positive_float,
        default=3600.0,
    )
    rc_detailed_extensions: tuple[str, ...] = _env(
        "RC_DETAILED_EXTENSIONS",
        "comma-separated extension ids that get a detailed presence filter (call start times); "
        "everyone else is covered by the account-wide filter",
        _id_list,
        default=(),
    )

    status_ttl_seconds: float = _env(
        "STATUS_TTL_SECONDS",
        "how long each status the bot writes lives unless renewed, so a stopped bot can never "
        "leave anyone stuck 'On a call'",
        _positive_float,
        default=3600.0,
    )
    call_debounce_seconds: float = _env(
        "CALL_DEBOUNCE_SECONDS",
        "how long a call must last before the bot writes 'On a call' (rings never count)",
        _non_negative_float,
        default=2.0,
    )
    free_debounce_seconds: float = _env(
        "FREE_DEBOUNCE_SECONDS",
        "how long someone must stay available before 'notify me when free' fires "
        "(so back-to-back calls do not)",
        _non_negative_float,
        default=20.0,
    )
    api_requests_per_minute: int = _env(
        "API_REQUESTS_PER_MINUTE",
        "how many requests each API key may make a minute (the availability API under /api/v1)",
        _positive_int,
        default=600,
    )
    api_stream_heartbeat_seconds: float = _env(
        "API_STREAM_HEARTBEAT_SECONDS",
        "how often an idle event stream (/api/v1/events) sends a keep-alive comment, so proxies "
        "do not close it; a revoked key's streams end at the next one",
        _positive_float,
        default=15.0,
    )
    api_max_streams: int = _env(
        "API_MAX_STREAMS",
        "how many event streams may be open at once, across all keys; more get 503",
        _positive_int,
        default=1000,
    )
    api_max_streams_per_key: int = _env(
        "API_MAX_STREAMS_PER_KEY",
        "how many event streams one API key may hold open at once; more get 429",
        _positive_int,
        default=10,
    )
    webhook_allow_private_urls: bool = _env(
        "WEBHOOK_ALLOW_PRIVATE_URLS",
        "true only where webhook receivers run on this machine or a private network (the demo, "
        "tests): allows http:// and private, loopback and link-local addresses, which are "
        "otherwise refused so API keys cannot make the bot reach internal services",
        _bool,
        default=False,
    )
    leader_lease_seconds: float = _env(
        "LEADER_LEASE_SECONDS",
        "with several replicas on PostgreSQL: how long the leader's lease lasts unless renewed, "
        "so how soon a replica takes over from a leader that died or hung (renewed every third "
        "of it)",
        _positive_float,
        default=10.0,
    )
    api_stale_after_seconds: float = _env(
        "API_STALE_AFTER_SECONDS",
        "with several replicas: after how many seconds without news from the leader (the "
        "database unreachable) a replica's API answers carry RCStatus-Stale-Seconds",
        _positive_float,
        default=10.0,
    )
    replica_id: str | None = _env(
        "REPLICA_ID",
        "a name for this replica in logs and /readyz (default: host name and process id)",
    )
    public_url: str | None = _env(
        "PUBLIC_URL",
        "the address people's browsers reach the bot at, for the Connect link "
        "(default http://localhost:PORT); https in production, as Slack's OAuth requires",
        _url("https://rcstatus.your-company.com"),
    )
    slack_admin_user_token: Secret | None = _env(
        "SLACK_ADMIN_USER_TOKEN",
        "optional: an owner's or admin's user token (paid workspaces) that sets everyone's status; "
        "Slack caps one token at 30 profiles a minute",
        _prefixed("xoxp-"),
        copied=True,
    )

    install_requests_per_minute: int = _env(
        "INSTALL_REQUESTS_PER_MINUTE",
        "how many times a minute one client address may open /slack/install (each visit stores "
        "an OAuth state for 10 minutes); more get 429 with Retry-After; 0 turns the limit off",
        _non_negative_int,
        default=10,
    )
    trusted_proxy_hops: int = _env(
        "TRUSTED_PROXY_HOPS",
        "how many reverse proxies you run in front of the bot that append X-Forwarded-For; "
        "0 (the default) takes the connecting address as the client's and ignores the header, "
        "which anyone can forge",
        _proxy_hops,
        default=0,
    )
    ringcentral_token_key: Secret | None = _env(
        "RINGCENTRAL_TOKEN_KEY",
        "a key you make once (python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())') and keep as a secret: RingCentral's session is "
        "stored encrypted with it, so a restart needs no new login (RingCentral allows 5 a "
        "minute); unset, nothing is stored and every start logs in with the JWT",
        _fernet_key,
    )
    log_level: str = _env(
        "LOG_LEVEL",
        "how much to log: debug, info, warning or error (the --log-level flag wins)",
        _choice("debug", "info", "warning", "error"),
        default="info",
    )
    log_format: str = _env(
        "LOG_FORMAT",
        "text (one readable line per event) or json (one JSON object per line, for a log "
        "collector); both are redacted",
        _choice("text", "json"),
        default="text",
    )
    dyno: str | None = _env(
        "DYNO",
        "set by Heroku on every dyno, never by you: a dyno's disk is thrown away at each restart, "
        "so with it `run` refuses a SQLite DATABASE_URL (attach PostgreSQL instead)",
    )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        env_file: str | Path | None = ".env",
    ) -> Settings:
        """Read the process environment over an optional .env file (the environment wins).

        Every problem is collected so one failed start names all of them.
        """
        values: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ if environ is None else environ)

        parsed: dict[str, Any] = {}
        problems: list[str] = []
        for spec in fields(cls):
            meta = spec.metadata
            raw = values.get(meta["env"], "").strip()
            if not raw:
                continue
            if raw in PLACEHOLDERS:
                problems.append(_problem(spec, "is still the placeholder from .env.example"))
                continue
            try:
                parsed[spec.name] = meta["parse"](raw)
            except ValueError as exc:
                # The value itself stays out of the message: it may be a secret.
                problems.append(_problem(spec, f"is malformed: {exc}"))
        if problems:
            raise ConfigError(problems)
        return cls(**parsed)

    def missing_for_run(self) -> list[str]:
        """Problems that stop the bot from talking to the real services, each one line that
        names the variable, says what is wrong and, after the first '; ', how to fix it."""
        needed = ["rc_client_id", "rc_client_secret", "rc_jwt", "slack_bot_token"]
        if self.slack_app_token is None:
            needed.append("slack_signing_secret")
        problems = []
        for spec in fields(self):
            if spec.name in needed and not getattr(self, spec.name):
                problem = _problem(spec, "is not set")
                if spec.name == "slack_signing_secret":
                    # Which one is missing depends on the mode the operator meant to pick.
                    problem = (
                        "SLACK_SIGNING_SECRET is not set, and HTTP mode (chosen because "
                        f"SLACK_APP_TOKEN is empty) needs it; {_fix(spec)}, or set "
                        "SLACK_APP_TOKEN to use Socket Mode instead (Basic Information → "
                        f"App-Level Tokens, scope connections:write, on {SLACK_APP_PAGE})."
                    )
                problems.append(problem)
        if self.dyno is not None and self.database_url.startswith("sqlite"):
            problems.append(
                "DATABASE_URL is a SQLite file on a Heroku dyno, whose disk is thrown away at "
                "every restart (and every person's connection with it); attach PostgreSQL "
                "(heroku addons:create heroku-postgresql), which sets DATABASE_URL for you."
            )
        return problems

    def service_seconds(self, seconds: float) -> float:
        """Real seconds that stand for `seconds` of Slack's or RingCentral's clock.

        The time scale shortens only what those services measure (rate windows, and the bot's
        holds and margins around the expirations it writes); never how long people talk, nor
        the WebSocket heartbeat, which follows the idle timeout the gateway itself announces.
        """
        return seconds / self.time_scale

    @property
    def rate_window_seconds(self) -> float:
        """The window every per-minute budget (Slack's tiers, RingCentral's groups) refers to."""
        return self.service_seconds(60.0)

    @property
    def connect_url(self) -> str:
        """Where a person starts connecting their status (Bolt's install page)."""
        base = self.public_url or f"http://localhost:{self.port}"
        return base.rstrip("/") + "/slack/install"

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def slack_authorize_url(self) -> str:
        """Slack's OAuth page beside the Web API (slack.com/api/ → slack.com/oauth/v2/authorize)."""
        base = self.slack_api_url.removesuffix("/").removesuffix("/api")
        return f"{base}/oauth/v2/authorize"


def log_settings(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """LOG_LEVEL and LOG_FORMAT alone, from the environment: logging is set up before the
    subcommand reads its settings file, so a container or a Procfile sets them there."""
    values = os.environ if environ is None else environ
    chosen: dict[str, str] = {}
    problems = []
    for spec in fields(Settings):
        if spec.name not in ("log_level", "log_format"):
            continue
        meta = spec.metadata
        raw = values.get(meta["env"], "").strip()
        try:
            chosen[spec.name] = meta["parse"](raw) if raw else str(spec.default)
        except ValueError as exc:
            problems.append(f"{meta['env']} is malformed ({exc}); {meta['source']}.")
    if problems:
        raise ConfigError(problems)
    return chosen["log_level"], chosen["log_format"]


def describe_settings() -> list[tuple[str, str, str]]:
    """(variable, default, where the value comes from) for every setting, for docs and `--help`."""
    rows = []
    for spec in fields(Settings):
        default = "" if spec.default is None else str(spec.default)
        rows.append((spec.metadata["env"], default, spec.metadata["source"]))
    return rows
