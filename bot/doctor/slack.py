"""`rcstatus-bot doctor`: checks a configuration against the services and says how to fix it."""

from __future__ import annotations

import asyncio
import json
import re
import textwrap
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote, urlsplit

import aiohttp
from ringcentral import SDK
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import URL, Connection, column, inspect, select, table
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.config import RC_CONSOLE, Settings
from bot.errors import ConfigError
from bot.ringcentral.client import (
    RingCentralClient,
    RingCentralError,
    RingCentralPermissionError,
    RingCentralUnavailable,
)
from bot.ringcentral.directory import Directory, Extension
from bot.slack.app import BOT_SCOPES
from bot.slack.people import SlackPeople, SlackPerson
from bot.store import LATEST_VERSION, StoreError, schema
from bot.store.engine import FAILURES, build_engine, describe, failure, parse_url
from bot.store.migrations import applied_version

Severity = Literal["ok", "warning", "error", "skipped"]

SYMBOLS: Final[Mapping[Severity, str]] = {"ok": "✓", "warning": "!", "error": "✗", "skipped": "-"}
WIDTH: Final = 80
NAMED_AT_MOST: Final = 5
_GLUE: Final = "\x00"
SLACK_TIMEOUT: Final = 15
SLACK_APP_PAGE: Final = "your Slack app's page (https://api.slack.com/apps)"
RC_PERMISSIONS_PAGE: Final = f"the app's Settings → App Permissions in {RC_CONSOLE}"
LINK_FIX: Final = "`/rcstatus link @user 101` or fix the email in RingCentral"
ACCOUNT_PRESENCE_PATH: Final = "/restapi/v1.0/account/~/presence"
# oauth.v2.access with a made-up code: the simulator checks the client id and secret before the
# code (the stricter reading); a Slack that checked the code first would only ever answer "ok".
OAUTH_PROBE_CODE: Final = "rcstatus-doctor-probe"
OAUTH_CREDENTIALS_ACCEPTED: Final = frozenset(
    {"invalid_code", "code_already_used", "invalid_grant_type", "bad_redirect_uri"}
)
LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})

SCOPE_PURPOSES: Final[Mapping[str, str]] = {
    "commands": "/rcstatus cannot be used",
    "chat:write": "the bot cannot send DMs (notify-when-free, reconnect notices)",
    "im:write": "the bot cannot open DMs",
    "users:read": "the bot cannot list people or hear status changes",
    "users:read.email": "people cannot be matched to extensions by email",
    "users.profile:read": "the bot cannot read a status before replacing it",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One outcome of one check: what was found and, when something is wrong, how to fix it."""

    section: str
    severity: Severity
    what: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "section": self.section,
            "severity": self.severity,
            "what": self.what,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """Every finding in the order the checks ran, and the verdict they add up to."""

    findings: tuple[Finding, ...]
    source: str

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning")

    @property
    def exit_code(self) -> int:
        """1 when the bot cannot work; warnings alone do not fail."""
        return 1 if self.errors else 0

    def of(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    def as_json(self) -> str:
        return json.dumps(
            {
                "ok": self.exit_code == 0,
                "errors": self.errors,
                "warnings": self.warnings,
                "source": self.source,
                "findings": [f.as_dict() for f in self.findings],
            },
            ensure_ascii=False,
            indent=2,
        )


class _Section:
    """Collects one section's findings."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.findings: list[Finding] = []

    def ok(self, what: str) -> None:
        self._add(Finding(self.name, "ok", what))

    def warning(self, what: str, fix: str) -> None:
        self._add(Finding(self.name, "warning", what, fix))

    def error(self, what: str, fix: str) -> None:
        self._add(Finding(self.name, "error", what, fix))

    def skipped(self, what: str) -> None:
        self._add(Finding(self.name, "skipped", what))

    def _add(self, finding: Finding) -> None:
        # Several checks can hit the same root cause (a wrong URL); it is reported once.
        if finding not in self.findings:
            self.findings.append(finding)


# ------------------------------------------------------------------------------- entry points


async def diagnose_environment(
    env_file: Path | None = Path(".env"), environ: Mapping[str, str] | None = None
) -> Report:
    """Read the settings the way `run` does, then diagnose them; bad settings are findings too."""
    source = "the environment" if env_file is None else f"{env_file} and the environment"
    config = _Section("Configuration")
    if env_file is not None and not _is_file(env_file):
        config.warning(
            f"there is no settings file at {env_file}; only the environment is read",
            "copy .env.example to .env and fill it in, or pass --env-file PATH",
        )
    try:
        settings = Settings.from_env(environ, env_file=env_file)
    except ConfigError as exc:
        for problem in exc.problems:
            what, _, source_text = problem.partition("; it comes from ")
            config.error(what, f"copy it from {source_text.rstrip('.')}" if source_text else "")
        config.skipped("nothing else was checked: the settings could not be read")
        return Report(tuple(config.findings), source)
    report = await diagnose(settings, source=source)
    return Report(tuple(config.findings) + report.findings, source)


def _is_file(path: Path) -> bool:
    return path.is_file()


async def diagnose(settings: Settings, *, source: str = "the given settings") -> Report:
    """Every check, in order; RingCentral, Slack and the database are checked side by side."""
    configuration = _check_configuration(settings)
    # A check that crashes takes the others down with it, awaited, rather than leaving them behind.
    async with asyncio.TaskGroup() as checks:
        ringcentral_check = checks.create_task(_check_ringcentral(settings))
        slack_check = checks.create_task(_check_slack(settings))
        database_check = checks.create_task(_check_database(settings))
    ringcentral, slack, database = (
        ringcentral_check.result(),
        slack_check.result(),
        database_check.result(),
    )
    people = _check_people(settings, ringcentral, slack, database)
    findings = [
        *configuration,
        *ringcentral.section.findings,
        *slack.section.findings,
        *database.section.findings,
        *people,
    ]
    return Report(tuple(findings), source)


# ------------------------------------------------------------------------------- configuration


def _check_configuration(settings: Settings) -> list[Finding]:
    section = _Section("Configuration")
    missing = {problem.split(" ", 1)[0] for problem in settings.missing_for_run()}
    for spec in fields(Settings):
        name = spec.metadata["env"]
        if name in missing:
            section.error(f"{name} is not set", f"copy it from {spec.metadata['source']}")
    if not missing:
        mode = "Socket Mode" if settings.socket_mode else "HTTP mode"
        section.ok(f"every setting the bot needs is present ({mode})")
    return section.findings


# ------------------------------------------------------------------------------- RingCentral


@dataclass(slots=True)
class _RingCentralFacts:
    section: _Section
    extensions: list[Extension] | None = None


@dataclass(frozen=True, slots=True)
class _Permission:
    label: str
    """The checkbox in the Developer Console."""
    scope_names: tuple[str, ...]
    """How a token's `scope` may spell it: names differ between RingCentral's own sources."""
    needed_for: str


READ_ACCOUNTS: Final = _Permission("Read Accounts", ("ReadAccounts",), "listing users")
READ_PRESENCE: Final = _Permission("Read Presence", ("ReadPresence",), "reading presence")
WEBSOCKETS: Final = _Permission(
    "WebSocket Subscriptions",
    ("SubscriptionWebSocket", "WebSocketsSubscriptions", "WebSocket"),
    "live presence updates",
)


async def _check_ringcentral(settings: Settings) -> _RingCentralFacts:
    facts = _RingCentralFacts(_Section("RingCentral"))
    section = facts.section
    client_id, secret, jwt = settings.rc_client_id, settings.rc_client_secret, settings.rc_jwt
    if not (client_id and secret and jwt):
        section.skipped("not checked: RC_CLIENT_ID, RC_CLIENT_SECRET and RC_JWT are all needed")
        return facts
    server = settings.rc_server_url.rstrip("/")
    platform = SDK(client_id, secret.reveal(), server).platform()
    client = RingCentralClient(
        server_url=server,
        client_id=client_id,
        client_secret=secret,
        jwt=jwt,
        rate_window=settings.rate_window_seconds,
        platform=platform,
        max_attempts=2,
    )
    try:
        await client.login()
    except RingCentralError as exc:
        section.findings.append(_login_failure(exc, server))
        return facts
    section.ok(f"logged in to {server} with RC_JWT")
    scopes = _token_scopes(platform)
    try:
        directory = Directory(client)

        async def list_users() -> str:
            await directory.refresh()
            return f"{len(directory)} enabled users listed"

        async def read_presence() -> str:
            await client.get(ACCOUNT_PRESENCE_PATH, {"perPage": 1})
            return "account presence readable"

        async def websocket_token() -> str:
            await client.ws_token()
            return "WebSocket token issued"

        listed = await _try_permission(section, READ_ACCOUNTS, scopes, list_users)
        await _try_permission(section, READ_PRESENCE, scopes, read_presence)
        await _try_permission(section, WEBSOCKETS, scopes, websocket_token)
        if listed:
            facts.extensions = list(directory)
            _check_directory(section, settings, facts.extensions)
    finally:
        await _log_out(platform)
    return facts


def _login_failure(exc: RingCentralError, server: str) -> Finding:
    section = "RingCentral"
    code = (exc.error_code or "").lower()
    text = str(exc).lower()
    where = f"the app's Credentials page in {RC_CONSOLE}"
    if isinstance(exc, RingCentralUnavailable):
        return Finding(
            section,
            "error",
            f"cannot reach RingCentral at {server}",
            "check RC_SERVER_URL (normally https://platform.ringcentral.com) and this machine's "
            "network or proxy",
        )
    if code in ("oau-123", "invalid_client") or "invalid client" in text:
        return Finding(
            section,
            "error",
            "RC_CLIENT_SECRET is wrong: RingCentral refused the app's credentials "
            "(OAU-123 invalid_client)",
            f"copy RC_CLIENT_SECRET, and RC_CLIENT_ID with it, from {where}",
        )
    if code in ("oau-112", "unauthorized_client"):
        return Finding(
            section,
            "error",
            "the RingCentral app does not allow the JWT auth flow (OAU-112 unauthorized_client)",
            f"choose 'JWT auth flow' under the app's Settings → Auth in {RC_CONSOLE}",
        )
    if code in ("oau-140", "oau-144", "invalid_grant") or "invalid_grant" in text:
        return Finding(
            section,
            "error",
            "RC_JWT was refused (invalid_grant): it is expired, revoked, or made for another app",
            "create a JWT for an administrator under Credentials → JWT credentials in "
            f"{RC_CONSOLE}, allowed for this app, and put it in RC_JWT",
        )
    if exc.status == 429:
        return Finding(
            section,
            "error",
            "RingCentral is rate-limiting logins (Auth group), so nothing could be checked",
            "wait a minute and run `rcstatus-bot doctor` again",
        )
    detail = " ".join(str(part) for part in (exc.status, exc.error_code) if part)
    return Finding(
        section,
        "error",
        f"RingCentral refused the login ({detail or type(exc).__name__})",
        f"check RC_CLIENT_ID, RC_CLIENT_SECRET and RC_JWT against {where}",
    )


def _token_scopes(platform: Any) -> frozenset[str] | None:
    """The permissions RingCentral granted this token, from the token response's `scope`."""
    try:
        scope = platform.auth().data().get("scope")
    except (AttributeError, TypeError):
        return None
    return frozenset(str(scope).split()) if scope else None


async def _try_permission(
    section: _Section,
    permission: _Permission,
    scopes: frozenset[str] | None,
    call: Callable[[], Awaitable[str]],
) -> bool:
    """Make the call the bot needs the permission for: the answer is the proof, the scope a hint."""
    missing = (
        f"the RingCentral app lacks the {permission.label} permission "
        f"(needed for {permission.needed_for})"
    )
    fix = f"tick {permission.label} in {RC_PERMISSIONS_PAGE}"
    try:
        done = await call()
    except RingCentralPermissionError:
        section.error(missing, fix)
        return False
    except RingCentralError as exc:
        if scopes is not None and not scopes.intersection(permission.scope_names):
            section.error(missing, fix)
        else:
            detail = " ".join(str(part) for part in (exc.status, exc.error_code) if part)
            section.error(
                f"{permission.label}: the check failed ({detail or type(exc).__name__})",
                "run `rcstatus-bot doctor` again; if it persists, check RingCentral's status page",
            )
        return False
    section.ok(f"{permission.label}: {done}")
    return True


def _check_directory(section: _Section, settings: Settings, extensions: list[Extension]) -> None:
    if len(extensions) <= 1:
        visible = _count(len(extensions), "enabled user is", "enabled users are")
        section.warning(
            f"only {visible} visible to RC_JWT in RingCentral",
            "if the account has more, create RC_JWT as an administrator "
            "(Credentials → JWT credentials)",
        )
    known = {extension.id for extension in extensions}
    unknown = [ext_id for ext_id in settings.rc_detailed_extensions if ext_id not in known]
    if unknown:
        section.warning(
            f"RC_DETAILED_EXTENSIONS names {_count(len(unknown), 'extension id')} no enabled "
            f"user has: {_names(unknown)}",
            "use the ids of enabled users (not extension numbers), or remove them",
        )


async def _log_out(platform: Any) -> None:
    """End our session: RingCentral allows few parallel ones, and the bot's must stay alive."""
    try:
        await asyncio.to_thread(platform.logout)
    except Exception:  # the SDK raises bare Exceptions; an abandoned session just expires
        return


# ------------------------------------------------------------------------------- Slack


@dataclass(slots=True)
class _SlackFacts:
    section: _Section
    team_id: str | None = None
    people: list[SlackPerson] | None = None


async def _check_slack(settings: Settings) -> _SlackFacts:
    facts = _SlackFacts(_Section("Slack"))
    client = AsyncWebClient(base_url=settings.slack_api_url, timeout=SLACK_TIMEOUT)
    await _check_bot_token(facts, settings, client)
    await _check_connection_mode(facts.section, settings, client)
    _check_public_url(facts.section, settings)
    await _check_oauth(facts.section, settings, client)
    await _check_admin_token(facts, settings, client)
    return facts


async def _check_bot_token(facts: _SlackFacts, settings: Settings, client: AsyncWebClient) -> None:
    section = facts.section
    if settings.slack_bot_token is None:
        section.skipped("bot token and scopes not checked: SLACK_BOT_TOKEN is not set")
        return
    token = settings.slack_bot_token.reveal()
    try:
        response = await client.auth_test(token=token)
    except SlackApiError as exc:
        if _not_slack(section, exc):
            return
        error = _slack_error(exc)
        fix = f"copy the Bot User OAuth Token from OAuth & Permissions on {SLACK_APP_PAGE}"
        if error in ("token_revoked", "account_inactive", "token_expired"):
            fix = (
                f"reinstall the app from OAuth & Permissions on {SLACK_APP_PAGE}, "
                "then copy the new Bot User OAuth Token"
            )
        section.error(f"Slack refused SLACK_BOT_TOKEN ({error})", fix)
        return
    except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        section.error(
            f"cannot reach Slack at {settings.slack_api_url} ({type(exc).__name__})",
            "check SLACK_API_URL (normally https://slack.com/api/) and the network or proxy",
        )
        return
    facts.team_id = str(response.get("team_id") or "")
    section.ok(
        f"SLACK_BOT_TOKEN works: bot @{response.get('user')} in {response.get('team')} "
        f"({facts.team_id})"
    )
    granted = _granted_scopes(response.headers)
    if granted is None:
        section.warning(
            "Slack did not say which scopes SLACK_BOT_TOKEN has, so they were not checked",
            f"compare OAuth & Permissions → Bot Token Scopes on {SLACK_APP_PAGE} with manifest.yml",
        )
    else:
        missing = [scope for scope in BOT_SCOPES if scope not in granted]
        for scope in missing:
            section.error(
                f"the bot token lacks the scope {scope}: {SCOPE_PURPOSES.get(scope, 'needed')}",
                f"add the bot scope {scope} under OAuth & Permissions on {SLACK_APP_PAGE} "
                "and reinstall the app",
            )
        if not missing:
            section.ok(f"the bot token has all {len(BOT_SCOPES)} scopes the bot needs")
        if "users:read" in missing or "users:read.email" in missing:
            return
    people = SlackPeople(
        AsyncWebClient(token=token, base_url=settings.slack_api_url, timeout=SLACK_TIMEOUT),
        facts.team_id,
    )
    try:
        await people.refresh()
    except SlackApiError as exc:
        if _not_slack(section, exc):
            return
        section.error(
            f"users.list failed ({_slack_error(exc)}), so people could not be matched",
            "run `rcstatus-bot doctor` again; if it persists, check the bot token's scopes",
        )
        return
    except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        section.error(
            f"users.list failed ({type(exc).__name__}), so people could not be matched",
            "run `rcstatus-bot doctor` again",
        )
        return
    facts.people = list(people)


def _granted_scopes(headers: Any) -> frozenset[str] | None:
    """The token's scopes as Slack reports them on every Web API answer (X-OAuth-Scopes)."""
    try:
        items = list(headers.items())
    except AttributeError:
        return None
    for key, value in items:
        if str(key).lower() == "x-oauth-scopes":
            return frozenset(s.strip() for s in str(value).split(",") if s.strip())
    return None


def _not_slack(section: _Section, exc: SlackApiError) -> bool:
    """Record an answer that carries no Slack error at all: the URL, not the token, is wrong."""
    response = exc.response
    if response is not None and response.get("error"):
        return False
    status = getattr(response, "status_code", None)
    section.error(
        f"SLACK_API_URL answered{f' HTTP {status}' if status else ''} without a Slack error: "
        "it does not look like Slack's Web API",
        "check SLACK_API_URL (normally https://slack.com/api/); if it is right, Slack may be "
        "having an outage",
    )
    return True


def _slack_error(exc: SlackApiError) -> str:
    response = exc.response
    error = response.get("error") if response is not None else None
    return str(error) if error else "no error given"


async def _check_connection_mode(
    section: _Section, settings: Settings, client: AsyncWebClient
) -> None:
    if settings.slack_app_token is not None:
        try:
            await client.apps_connections_open(app_token=settings.slack_app_token.reveal())
        except SlackApiError as exc:
            if _not_slack(section, exc):
                return
            error = _slack_error(exc)
            fix = (
                "create an App-Level Token with the connections:write scope under Basic "
                f"Information → App-Level Tokens on {SLACK_APP_PAGE}; put it in SLACK_APP_TOKEN"
            )
            if error not in ("invalid_auth", "not_authed", "missing_scope", "token_revoked"):
                fix = f"turn on Socket Mode under Settings → Socket Mode on {SLACK_APP_PAGE}"
            section.error(f"Socket Mode: Slack refused SLACK_APP_TOKEN ({error})", fix)
        except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            section.error(
                f"Socket Mode: cannot reach Slack ({type(exc).__name__})",
                "check SLACK_API_URL and the network or proxy",
            )
        else:
            section.ok("Socket Mode: SLACK_APP_TOKEN opens a connection")
        return
    if settings.slack_signing_secret is not None:
        section.ok("HTTP mode: SLACK_SIGNING_SECRET is set (SLACK_APP_TOKEN is empty)")


def _check_public_url(section: _Section, settings: Settings) -> None:
    oauth = bool(settings.slack_client_id and settings.slack_client_secret)
    if settings.public_url is None:
        if not settings.socket_mode:
            section.warning(
                "PUBLIC_URL is not set: in HTTP mode Slack must reach /slack/events over https",
                "set PUBLIC_URL=https://<host> and the app's Request URLs to "
                "https://<host>/slack/events",
            )
        elif oauth:
            section.warning(
                f"PUBLIC_URL is not set: the Connect link points at {settings.connect_url}",
                "set PUBLIC_URL to the https address people's browsers reach the bot at",
            )
        return
    parts = urlsplit(settings.public_url)
    host = (parts.hostname or "").lower()
    local = host in LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")
    if parts.scheme == "https":
        section.ok(f"PUBLIC_URL is https ({settings.public_url})")
    elif local:
        section.ok(f"PUBLIC_URL {settings.public_url} is local: fine for testing only")
    else:
        section.warning(
            f"PUBLIC_URL uses http on {host}: Slack wants https for request and redirect URLs",
            f"serve the bot behind https and set PUBLIC_URL=https://{parts.netloc}",
        )


async def _check_oauth(section: _Section, settings: Settings, client: AsyncWebClient) -> None:
    client_id, client_secret = settings.slack_client_id, settings.slack_client_secret
    if not (client_id and client_secret):
        absent = " and ".join(
            name
            for name, value in (
                ("SLACK_CLIENT_ID", client_id),
                ("SLACK_CLIENT_SECRET", client_secret),
            )
            if not value
        )
        if settings.slack_admin_user_token is not None:
            section.ok(f"{absent} not set: nobody needs to connect (SLACK_ADMIN_USER_TOKEN)")
            return
        section.warning(
            f"{absent} not set: nobody can connect, so no status will ever change",
            f"copy them from Basic Information → App Credentials on {SLACK_APP_PAGE}",
        )
        return
    try:
        await client.oauth_v2_access(
            client_id=client_id, client_secret=client_secret.reveal(), code=OAUTH_PROBE_CODE
        )
    except SlackApiError as exc:
        if _not_slack(section, exc):
            return
        error = _slack_error(exc)
        where = f"Basic Information → App Credentials on {SLACK_APP_PAGE}"
        if error == "invalid_client_id":
            section.error(
                "SLACK_CLIENT_ID is wrong: Slack does not know it (invalid_client_id)",
                f"copy the Client ID from {where}",
            )
        elif error == "bad_client_secret":
            section.error(
                "SLACK_CLIENT_SECRET is wrong: nobody can connect (bad_client_secret)",
                f"copy the Client Secret from {where}",
            )
        elif error in OAUTH_CREDENTIALS_ACCEPTED:
            section.ok("OAuth: Slack accepted SLACK_CLIENT_ID and SLACK_CLIENT_SECRET")
        else:
            section.warning(
                f"OAuth: could not check SLACK_CLIENT_ID and SLACK_CLIENT_SECRET ({error})",
                "run `rcstatus-bot doctor` again",
            )
    except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        section.warning(
            f"OAuth: could not check SLACK_CLIENT_ID and SLACK_CLIENT_SECRET "
            f"({type(exc).__name__})",
            "run `rcstatus-bot doctor` again",
        )
    else:
        # A made-up code was accepted: whatever answered is not Slack's OAuth.
        section.warning(
            "OAuth: Slack accepted a made-up code, so the credentials could not be checked",
            "check SLACK_API_URL (normally https://slack.com/api/)",
        )


async def _check_admin_token(
    facts: _SlackFacts, settings: Settings, client: AsyncWebClient
) -> None:
    section = facts.section
    if settings.slack_admin_user_token is None:
        return
    try:
        response = await client.auth_test(token=settings.slack_admin_user_token.reveal())
    except SlackApiError as exc:
        if _not_slack(section, exc):
            return
        section.error(
            f"Slack refused SLACK_ADMIN_USER_TOKEN ({_slack_error(exc)})",
            "have an admin or owner install the app again and copy their User OAuth Token, "
            "or remove SLACK_ADMIN_USER_TOKEN",
        )
        return
    except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        section.error(
            f"SLACK_ADMIN_USER_TOKEN could not be checked ({type(exc).__name__})",
            "run `rcstatus-bot doctor` again",
        )
        return
    granted = _granted_scopes(response.headers)
    if granted is not None and "users.profile:write" not in granted:
        section.error(
            "SLACK_ADMIN_USER_TOKEN lacks the user scope users.profile:write",
            f"add the user scope users.profile:write on {SLACK_APP_PAGE}, reinstall, "
            "and copy the new User OAuth Token",
        )
        return
    if facts.team_id and response.get("team_id") != facts.team_id:
        section.error(
            "SLACK_ADMIN_USER_TOKEN belongs to another workspace than SLACK_BOT_TOKEN",
            "copy the User OAuth Token of an admin of the bot's own workspace",
        )
        return
    user_id = str(response.get("user_id") or "")
    holder = next((p for p in facts.people or [] if p.id == user_id), None)
    if holder is not None and not (holder.is_admin or holder.is_owner):
        section.error(
            "SLACK_ADMIN_USER_TOKEN belongs to a member, who may set only their own status",
            "use the User OAuth Token of a workspace admin or owner",
        )
        return
    section.ok("SLACK_ADMIN_USER_TOKEN works and may write profiles")


# ------------------------------------------------------------------------------- database


@dataclass(slots=True)
class _StoredState:
    manual_links: dict[str, dict[str, str]] = field(default_factory=dict)
    """team → Slack user → extension id, for links made with /rcstatus link."""
    connected: dict[str, set[str]] = field(default_factory=dict)
    """team → Slack users with a stored user token."""


@dataclass(slots=True)
class _DatabaseFacts:
    section: _Section
    state: _StoredState | None = None


async def _check_database(settings: Settings) -> _DatabaseFacts:
    facts = _DatabaseFacts(_Section("Database"))
    section = facts.section
    try:
        url = parse_url(settings.database_url)
    except StoreError as exc:
        section.error(
            str(exc), "set DATABASE_URL to sqlite+aiosqlite:///rcstatus.db or a postgresql:// URL"
        )
        return facts
    where = describe(url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if not database or database == ":memory:":
            section.warning(
                "DATABASE_URL is an in-memory SQLite database: links and connections are lost "
                "at every restart",
                "use a file, such as sqlite+aiosqlite:///rcstatus.db",
            )
            facts.state = _StoredState()
            return facts
        path, exists, folder = _locate_sqlite_file(database)
        if not exists:
            if not _is_dir(folder):
                section.error(
                    f"cannot create {where}: the folder {folder} does not exist",
                    "create the folder or point DATABASE_URL elsewhere",
                )
                return facts
            section.ok(f"{where} does not exist yet; the bot creates it at first start")
            facts.state = _StoredState()
            return facts
        engine = create_async_engine(_read_only_sqlite(url, path))
    else:
        try:
            engine = build_engine(url, echo=False)
        except StoreError as exc:
            section.error(str(exc), "install the driver or fix DATABASE_URL")
            return facts
    try:
        version = await applied_version(engine)
        state = await _read_state(engine, settings.slack_client_id)
    except FAILURES as exc:
        section.error(
            str(failure(url, "reading", exc)),
            "check DATABASE_URL and that the database accepts connections",
        )
        return facts
    finally:
        await engine.dispose()
    if version > LATEST_VERSION:
        section.error(
            f"{where} is at schema version {version}, newer than this rcstatus ({LATEST_VERSION})",
            "upgrade rcstatus before running it against this database",
        )
    elif version == 0:
        section.ok(f"{where} is empty; the bot creates its tables at first start")
    else:
        upgrade = "" if version == LATEST_VERSION else f", upgraded to {LATEST_VERSION} at start"
        section.ok(f"{where} is readable (schema version {version}{upgrade})")
    facts.state = state
    return facts


def _locate_sqlite_file(database: str) -> tuple[Path, bool, Path]:
    """The file, whether it exists, and its folder: where the bot would create it."""
    path = Path(database.removeprefix("file:").split("?", 1)[0]).expanduser().resolve()
    return path, path.is_file(), path.parent


def _is_dir(path: Path) -> bool:
    return path.is_dir()


def _read_only_sqlite(url: URL, path: Path) -> URL:
    """The same file opened read-only, so diagnosing never writes to the bot's database."""
    return url.set(
        drivername="sqlite+aiosqlite",
        database=f"file:{quote(str(path))}",
        query={"mode": "ro", "uri": "true"},
    )


async def _read_state(engine: AsyncEngine, client_id: str | None) -> _StoredState:
    async with engine.connect() as conn:
        return await conn.run_sync(_read_state_sync, client_id)


def _read_state_sync(conn: Connection, client_id: str | None) -> _StoredState:
    state = _StoredState()
    tables = set(inspect(conn).get_table_names())
    links = schema.links
    if links.name in tables:
        rows = conn.execute(
            select(links.c.team_id, links.c.user_id, links.c.extension_id).where(
                links.c.source == "manual"
            )
        )
        for team_id, user_id, extension_id in rows:
            state.manual_links.setdefault(team_id, {})[user_id] = extension_id
    if schema.SLACK_INSTALLATIONS in tables:
        installations = table(
            schema.SLACK_INSTALLATIONS,
            column("client_id"),
            column("team_id"),
            column("user_id"),
            column("user_token"),
        )
        query = (
            select(installations.c.team_id, installations.c.user_id)
            .where(installations.c.user_token.is_not(None))
            .distinct()
        )
        if client_id:
            query = query.where(installations.c.client_id == client_id)
        for team_id, user_id in conn.execute(query):
            if team_id and user_id:
                state.connected.setdefault(team_id, set()).add(user_id)
    return state


# ------------------------------------------------------------------------------- people


@dataclass(frozen=True, slots=True)
class Coverage:
    """How Slack people and RingCentral users pair up, as the bot would link them at start."""

    linked: dict[str, str]
    """Slack user id → extension id."""
    manual: int
    unmatched: list[SlackPerson]
    """Slack people with no extension of their email and no link by hand."""
    nobody: list[Extension]
    """Enabled RingCentral users nobody in Slack is linked to."""
    shared_slack_emails: dict[str, list[SlackPerson]]
    """An email several Slack people have: its extension goes to none of them."""
    shared_rc_emails: dict[str, list[Extension]]
    """An email several extensions have: only the first is ever linked."""


def coverage(
    people: Iterable[SlackPerson],
    extensions: Iterable[Extension],
    manual_links: Mapping[str, str],
) -> Coverage:
    """Match by email, case-insensitively, with links made by hand taking precedence."""
    people = list(people)
    extensions = list(extensions)
    by_id = {e.id: e for e in extensions}
    rc_by_email: dict[str, list[Extension]] = {}
    for extension in extensions:
        if extension.email:
            rc_by_email.setdefault(extension.email, []).append(extension)
    slack_by_email: dict[str, list[SlackPerson]] = {}
    for person in people:
        if person.email:
            slack_by_email.setdefault(person.email, []).append(person)
    held_by_hand = {ext: user for user, ext in manual_links.items() if ext in by_id}

    linked: dict[str, str] = {}
    manual = 0
    unmatched: list[SlackPerson] = []
    for person in people:
        by_hand = manual_links.get(person.id)
        if by_hand is not None and by_hand in by_id:
            linked[person.id] = by_hand
            manual += 1
            continue
        matches = rc_by_email.get(person.email, []) if person.email else []
        if not matches:
            unmatched.append(person)
            continue
        extension_id = matches[0].id
        shared = len(slack_by_email.get(person.email or "", [])) > 1
        if not shared and extension_id not in held_by_hand:
            linked[person.id] = extension_id
    taken = set(linked.values())
    return Coverage(
        linked=linked,
        manual=manual,
        unmatched=unmatched,
        nobody=[e for e in extensions if e.id not in taken],
        shared_slack_emails={e: ps for e, ps in slack_by_email.items() if len(ps) > 1},
        shared_rc_emails={e: xs for e, xs in rc_by_email.items() if len(xs) > 1},
    )


def _check_people(
    settings: Settings,
    ringcentral: _RingCentralFacts,
    slack: _SlackFacts,
    database: _DatabaseFacts,
) -> list[Finding]:
    section = _Section("People")
    if ringcentral.extensions is None or slack.people is None or slack.team_id is None:
        needs = [
            what
            for what, missing in (
                ("RingCentral's user list", ringcentral.extensions is None),
                ("Slack's people list", slack.people is None),
            )
            if missing
        ]
        section.skipped(f"mapping not checked: it needs {' and '.join(needs)} (see above)")
        return section.findings
    state = database.state
    manual_links = state.manual_links.get(slack.team_id, {}) if state else {}
    found = coverage(slack.people, ringcentral.extensions, manual_links)
    by_hand = f", {found.manual} by hand" if found.manual else ""
    section.ok(
        f"{len(found.linked)} of {_count(len(slack.people), 'Slack person', 'Slack people')} "
        f"linked to a RingCentral extension{by_hand}"
    )
    if found.unmatched:
        section.warning(
            f"{_count(len(found.unmatched), 'Slack person has', 'Slack people have')} no "
            f"RingCentral extension with their email: {_names(_who(p) for p in found.unmatched)}",
            LINK_FIX,
        )
    if found.nobody:
        section.warning(
            f"{_count(len(found.nobody), 'RingCentral user has', 'RingCentral users have')} "
            f"nobody in Slack with their email: {_names(_extension(e) for e in found.nobody)}",
            "fine if they are not on Slack; otherwise fix the email or "
            "`/rcstatus link @user <extension>`",
        )
    for email, sharing in sorted(found.shared_slack_emails.items()):
        section.warning(
            f"{len(sharing)} Slack people share the email {email}, so none of them is linked",
            f"give each their own email in Slack, or {LINK_FIX.split(' or ', 1)[0]}",
        )
    for email, extensions in sorted(found.shared_rc_emails.items()):
        section.warning(
            f"{_count(len(extensions), 'extension')} share the email {email}: "
            f"{_names(e.number for e in extensions)}; only {extensions[0].number} can be linked",
            "give each user their own email in RingCentral (Admin Portal → Users)",
        )
    _check_connected(section, settings, found, state, slack.team_id)
    return section.findings


def _check_connected(
    section: _Section,
    settings: Settings,
    found: Coverage,
    state: _StoredState | None,
    team_id: str,
) -> None:
    if settings.slack_admin_user_token is not None:
        section.ok("statuses are written with SLACK_ADMIN_USER_TOKEN: connecting is optional")
        return
    if state is None:
        section.skipped("connections not counted: the database could not be read (see above)")
        return
    if not found.linked:
        return
    connected = state.connected.get(team_id, set()) & set(found.linked)
    if not connected:
        section.warning(
            f"none of the {len(found.linked)} linked people has connected, so no status changes",
            "each person runs `/rcstatus connect` once (or presses Connect in the App Home)",
        )
        return
    section.ok(f"{len(connected)} of {len(found.linked)} linked people have connected")


def _who(person: SlackPerson) -> str:
    return person.email or f"{person.name} (no email)"


def _extension(extension: Extension) -> str:
    return f"{extension.number} {extension.name}".strip()


def _names(items: Iterable[str]) -> str:
    """At most a few, then how many more: a report names examples, not the whole company."""
    names = list(items)
    shown = ", ".join(names[:NAMED_AT_MOST])
    more = len(names) - NAMED_AT_MOST
    return f"{shown} and {more} more" if more > 0 else shown


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else (plural or singular + 's')}"


# ------------------------------------------------------------------------------- output


def render(report: Report, width: int = WIDTH) -> str:
    """The report for a terminal: sections, one symbol per finding, its fix, a verdict."""
    lines = _wrap(f"rcstatus doctor: settings from {report.source}", "", width)
    current = None
    for finding in report.findings:
        if finding.section != current:
            current = finding.section
            lines += ["", current]
        symbol = SYMBOLS[finding.severity]
        lines += _wrap(finding.what, f"  {symbol} ", width)
        if finding.fix and finding.severity in ("warning", "error"):
            lines += _wrap(finding.fix, "      fix: ", width)
    lines += ["", _verdict(report)]
    return "\n".join(lines) + "\n"


def _wrap(text: str, lead: str, width: int) -> list[str]:
    """Wrapped under its lead; a `command` is never split, so it can be copied whole. Only a word
    longer than a whole line (a deep file path) is cut, to keep to the width."""
    glued = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", _GLUE), text)
    lines = textwrap.wrap(
        glued,
        width=width,
        initial_indent=lead,
        subsequent_indent=" " * len(lead),
        break_long_words=True,
        break_on_hyphens=False,
    )
    return [line.replace(_GLUE, " ") for line in lines] or [lead.rstrip()]


def _verdict(report: Report) -> str:
    warnings = _count(report.warnings, "warning")
    if report.errors:
        return (
            f"✗ {_count(report.errors, 'error')}, {warnings}: "
            "rcstatus cannot work until the errors are fixed."
        )
    return f"✓ no errors, {warnings}: rcstatus can work."
