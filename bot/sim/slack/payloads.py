"""Builds what Slack sends an app: slash commands, block_actions and Events API callbacks."""

from __future__ import annotations

import random
import re
import time
from typing import Any

from bot.sim.slack.state import AppIdentity, Workspace

_MENTION = re.compile(r"(?<![<\w])@([a-z0-9][a-z0-9._-]*[a-z0-9])")


def trigger_id(rng: random.Random) -> str:
    return (
        f"{rng.randrange(10**10, 10**11)}.{rng.randrange(10**8, 10**9)}.{rng.getrandbits(80):020x}"
    )


def escape_mentions(text: str, workspace: Workspace) -> str:
    """What Slack does to "@handle" with should_escape on: the current `<@U…>` form."""

    def replace(match: re.Match[str]) -> str:
        user = workspace.by_handle(match.group(1))
        return match.group(0) if user is None else f"<@{user.id}>"

    return _MENTION.sub(replace, text)


def slash_command(
    identity: AppIdentity,
    *,
    user_id: str,
    user_name: str,
    command: str,
    text: str,
    channel_id: str,
    channel_name: str,
    response_url: str,
    trigger: str,
) -> dict[str, str]:
    """The form fields of a slash-command request (all strings, as Slack sends them)."""
    return {
        "token": identity.verification_token,
        "team_id": identity.team_id,
        "team_domain": identity.team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": identity.app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger,
    }


def block_actions(
    identity: AppIdentity,
    *,
    user_id: str,
    user_name: str,
    action: dict[str, Any],
    trigger: str,
    view: dict[str, Any] | None,
    message: dict[str, Any] | None,
    channel: dict[str, str] | None,
    response_url: str | None,
) -> dict[str, Any]:
    """A block_actions payload for a click in the Home tab (`view`) or in a message."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {
            "id": user_id,
            "username": user_name,
            "name": user_name,
            "team_id": identity.team_id,
        },
        "api_app_id": identity.app_id,
        "token": identity.verification_token,
        "trigger_id": trigger,
        "team": {"id": identity.team_id, "domain": identity.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": {}},
        "actions": [action],
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view["id"]}
        payload["view"] = view
    if message is not None and channel is not None:
        payload["container"] = {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel["id"],
            "is_ephemeral": bool(message.get("is_ephemeral")),
        }
        payload["channel"] = channel
        if not message.get("is_ephemeral"):
            payload["message"] = message
    if response_url is not None:
        # Slack gives a response_url for clicks in messages, never for clicks in views.
        payload["response_url"] = response_url
    return payload


def event_callback(identity: AppIdentity, event: dict[str, Any], event_id: str) -> dict[str, Any]:
    """The Events API envelope around one event."""
    return {
        "token": identity.verification_token,
        "team_id": identity.team_id,
        "context_team_id": identity.team_id,
        "context_enterprise_id": None,
        "api_app_id": identity.app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": identity.team_id,
                "user_id": identity.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{event_id}",
    }


def event_ts() -> str:
    return f"{time.time():.6f}"


def user_status_changed(user_json: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "user_status_changed",
        "user": user_json,
        "cache_ts": int(time.time()),
        "event_ts": event_ts(),
    }


def user_huddle_changed(user_json: dict[str, Any]) -> dict[str, Any]:
    """docs.slack.dev/reference/events/user_huddle_changed: a user_change-shaped event."""
    return {
        "type": "user_huddle_changed",
        "user": user_json,
        "cache_ts": int(time.time()),
        "event_ts": event_ts(),
    }


def app_home_opened(user_id: str, channel: str, view: dict[str, Any] | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": channel,
        "tab": "home",
        "event_ts": event_ts(),
    }
    if view is not None:
        event["view"] = view
    return event


def tokens_revoked(user_ids: list[str]) -> dict[str, Any]:
    return {
        "type": "tokens_revoked",
        "tokens": {"oauth": user_ids, "bot": []},
        "event_ts": event_ts(),
    }
