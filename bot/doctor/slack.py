"""The Slack check: the tokens, the connection mode, OAuth and the people list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.doctor.report import Section
from bot.slack.app import BOT_SCOPES
from bot.slack.people import SlackPeople, SlackPerson

SLACK_TIMEOUT: Final = 15
SLACK_APP_PAGE: Final = "your Slack app's page (https://api.slack.com/apps)"

# oauth.v2.access with a made-up code: the simulator checks the client id and secret before the
# code (the stricter reading); a Slack that checked the code first would only ever answer "ok".
OAUTH_PROBE_CODE: Final = "rcstatus-doctor-probe"
OAUTH_CREDENTIALS_ACCEPTED: Final = frozenset(
    {"invalid_code", "code_already_used", "invalid_grant_type", "bad_redirect_uri"}
)

SCOPE_PURPOSES: Final[Mapping[str, str]] = {
    "commands": "/rcstatus cannot be used",
    "chat:write": "the bot cannot send DMs (notify-when-free, reconnect notices)",
    "users:read": "the bot cannot list people or hear status changes",
    "users:read.email": "people cannot be matched to extensions by email",
}


@dataclass(slots=True)
class SlackFacts:
    """The Slack findings, and the workspace and its people if the bot token could list them."""

    section: Section
    team_id: str | None = None
    people: list[SlackPerson] | None = None


async def check_slack(settings: Settings) -> SlackFacts:
    """Every Slack setting, tried against Slack the way the bot will use it."""
    facts = SlackFacts(Section("Slack"))
    client = AsyncWebClient(base_url=settings.slack_api_url, timeout=SLACK_TIMEOUT)
    await _check_bot_token(facts, settings, client)
    await _check_connection_mode(facts.section, settings, client)
    await _check_oauth(facts.section, settings, client)
    await _check_admin_token(facts, settings, client)
    return facts


async def _check_bot_token(facts: SlackFacts, settings: Settings, client: AsyncWebClient) -> None:
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


def _not_slack(section: Section, exc: SlackApiError) -> bool:
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
    section: Section, settings: Settings, client: AsyncWebClient
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
    else:
        section.skipped(
            "HTTP mode (SLACK_APP_TOKEN is empty) not checked: SLACK_SIGNING_SECRET is not set"
        )


async def _check_oauth(section: Section, settings: Settings, client: AsyncWebClient) -> None:
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


async def _check_admin_token(facts: SlackFacts, settings: Settings, client: AsyncWebClient) -> None:
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
