"""The RingCentral check: logs in with the bot's credentials and proves each permission it needs."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from bot.app import ringcentral_client
from bot.config import RC_CONSOLE, Settings
from bot.doctor.report import Finding, Section, count, names
from bot.errors import ConfigError
from bot.ringcentral.advice import detail, login_advice
from bot.ringcentral.client import (
    RingCentralClient,
    RingCentralError,
    RingCentralPermissionError,
    RingCentralRateLimited,
)
from bot.ringcentral.directory import Directory, Extension
from bot.ringcentral.permissions import (
    EDIT_PRESENCE,
    READ_ACCOUNTS,
    READ_PRESENCE,
    WEBSOCKET_SUBSCRIPTIONS,
    AppPermission,
)

SECTION: Final = "RingCentral"
RC_PERMISSIONS_PAGE: Final = f"the app's Settings → App Permissions in {RC_CONSOLE}"
ACCOUNT_PRESENCE_PATH: Final = "/restapi/v1.0/account/~/presence"
# A report should come in seconds: one retry, where the bot keeps trying for longer.
MAX_ATTEMPTS: Final = 2


@dataclass(slots=True)
class RingCentralFacts:
    """The RingCentral findings, and the enabled users if they could be listed."""

    section: Section
    extensions: list[Extension] | None = None


def build_client(settings: Settings) -> RingCentralClient | None:
    """The client `run` would build from these settings, retrying less; None without credentials."""
    try:
        return ringcentral_client(settings, max_attempts=MAX_ATTEMPTS)
    except ConfigError:
        return None


async def check_ringcentral(
    settings: Settings, client: RingCentralClient | None
) -> RingCentralFacts:
    """Log in as the bot would, then make one call for each permission it needs."""
    facts = RingCentralFacts(Section(SECTION))
    section = facts.section
    if client is None:
        section.skipped("not checked: RC_CLIENT_ID, RC_CLIENT_SECRET and RC_JWT are all needed")
        return facts
    server = settings.rc_server_url.rstrip("/")
    try:
        await client.login()
    except RingCentralError as exc:
        section.findings.append(_login_failure(exc, server))
        return facts
    section.ok(f"logged in to {server} with RC_JWT")
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

        listed = await _try_permission(section, client, READ_ACCOUNTS, "listing users", list_users)
        await _try_permission(section, client, READ_PRESENCE, "reading presence", read_presence)
        await _try_permission(
            section, client, WEBSOCKET_SUBSCRIPTIONS, "live presence updates", websocket_token
        )
        _check_edit_presence(section, client.granted_permissions())
        if listed:
            facts.extensions = list(directory)
            _check_directory(section, settings, facts.extensions)
    finally:
        # RingCentral allows few parallel sessions per user, and the bot's must stay alive; a
        # session that cannot be ended now just expires.
        with contextlib.suppress(RingCentralError):
            await client.logout()
    return facts


def _check_edit_presence(section: Section, granted: frozenset[str] | None) -> None:
    """Huddle → Busy writes presence; trying it would change someone's, so the token says."""
    if granted is None:
        return
    if granted & set(EDIT_PRESENCE.scope_names):
        section.ok("Edit Presence granted: huddle → Busy can set people's RingCentral presence")
        return
    section.warning(
        "the app lacks Edit Presence: '/rcstatus settings huddle busy' cannot set anyone Busy",
        f"add the '{EDIT_PRESENCE.label}' permission to the app in {RC_CONSOLE} "
        "(only needed if people use huddle → Busy)",
    )


def _login_failure(exc: RingCentralError, server: str) -> Finding:
    """What stopped the login, and where to fix it."""
    if isinstance(exc, RingCentralRateLimited):
        what = "RingCentral is rate-limiting logins (Auth group), so nothing could be checked"
        fix = "wait a minute and run `rcstatus-bot doctor` again"
    else:
        what, fix = login_advice(exc, server)
    return Finding(SECTION, "error", what, fix)


async def _try_permission(
    section: Section,
    client: RingCentralClient,
    permission: AppPermission,
    needed_for: str,
    call: Callable[[], Awaitable[str]],
) -> bool:
    """Make the call the bot needs the permission for, and say what it proved."""
    try:
        done = await client.probe_permission(permission, call)
    except RingCentralPermissionError:
        section.error(
            f"the RingCentral app lacks the {permission.label} permission "
            f"(needed for {needed_for})",
            f"tick {permission.label} in {RC_PERMISSIONS_PAGE}",
        )
        return False
    except RingCentralError as exc:
        section.error(
            f"{permission.label}: the check failed ({detail(exc)})",
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
