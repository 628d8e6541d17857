"""The RingCentral check: logs in with the bot's credentials and proves each permission it needs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from ringcentral import SDK

from bot.config import RC_CONSOLE, Settings
from bot.doctor.report import Finding, Section, count, names
from bot.ringcentral.client import (
    RingCentralClient,
    RingCentralError,
    RingCentralPermissionError,
    RingCentralUnavailable,
)
from bot.ringcentral.directory import Directory, Extension

RC_PERMISSIONS_PAGE: Final = f"the app's Settings → App Permissions in {RC_CONSOLE}"

ACCOUNT_PRESENCE_PATH: Final = "/restapi/v1.0/account/~/presence"


@dataclass(slots=True)
class RingCentralFacts:
    """The RingCentral findings, and the enabled users if they could be listed."""

    section: Section
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


async def check_ringcentral(settings: Settings) -> RingCentralFacts:
    """Log in as the bot would, then make one call for each permission it needs."""
    facts = RingCentralFacts(Section("RingCentral"))
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
    section: Section,
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


def _check_directory(section: Section, settings: Settings, extensions: list[Extension]) -> None:
    if len(extensions) <= 1:
        visible = count(len(extensions), "enabled user is", "enabled users are")
        section.warning(
            f"only {visible} visible to RC_JWT in RingCentral",
            "if the account has more, create RC_JWT as an administrator "
            "(Credentials → JWT credentials)",
        )
    known = {extension.id for extension in extensions}
    unknown = [ext_id for ext_id in settings.rc_detailed_extensions if ext_id not in known]
    if unknown:
        section.warning(
            f"RC_DETAILED_EXTENSIONS names {count(len(unknown), 'extension id')} no enabled "
            f"user has: {names(unknown)}",
            "use the ids of enabled users (not extension numbers), or remove them",
        )


async def _log_out(platform: Any) -> None:
    """End our session: RingCentral allows few parallel ones, and the bot's must stay alive."""
    try:
        await asyncio.to_thread(platform.logout)
    except Exception:  # the SDK raises bare Exceptions; an abandoned session just expires
        return
