"""Typed reads of Slack payloads: a missing or mistyped field is None, never an exception."""

from __future__ import annotations

import logging
from typing import Any, Final

log = logging.getLogger(__name__)

MAX_ID_LENGTH: Final = 32


def field(payload: object, *path: str) -> object:
    """The value at `path` through nested objects, or None where any step is not an object."""
    value = payload
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def text(payload: object, *path: str) -> str | None:
    """A non-empty string at `path`, or None."""
    value = field(payload, *path)
    return value if isinstance(value, str) and value else None


def slack_id(payload: object, *path: str) -> str | None:
    """A Slack id (user, team, channel) at `path`: short, letters and digits only."""
    return as_slack_id(field(payload, *path))


def as_slack_id(value: object) -> str | None:
    if (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_LENGTH
        and value.isascii()
        and value.isalnum()
    ):
        return value
    return None


def mapping(payload: object, *path: str) -> dict[str, Any] | None:
    """An object at `path`, or None."""
    value = field(payload, *path)
    return value if isinstance(value, dict) else None


def first_action(body: object) -> dict[str, Any] | None:
    """The clicked element of a block_actions payload."""
    actions = field(body, "actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        return actions[0]
    return None


def ignored(kind: str, missing: str) -> None:
    """One line for a payload we cannot act on; its content stays out (it may hold secrets)."""
    log.warning("ignored a %s without %s", kind, missing)
