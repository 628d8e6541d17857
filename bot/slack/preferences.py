"""A person's effective status preferences: their own choices, then the workspace's, then ours."""

from __future__ import annotations

from typing import TypeVar

from bot.policy import StatusPreferences
from bot.store import Store
from bot.store.records import Preferences, WorkspaceDefaults

_T = TypeVar("_T")


def _first(*choices: _T | None) -> _T:
    """The first choice that was made (the last one, the bot's own, always is)."""
    for choice in choices[:-1]:
        if choice is not None and choice != "":
            return choice
    last = choices[-1]
    assert last is not None
    return last


def combine(
    stored: Preferences, defaults: WorkspaceDefaults, base: StatusPreferences | None = None
) -> StatusPreferences:
    """Each choice from the person if they made it, else the workspace's, else the built-in."""
    base = base or StatusPreferences()

    return StatusPreferences(
        sync_enabled=stored.sync_enabled,
        paused=stored.paused,
        policy=stored.policy,
        call_text=_first(stored.call_text, defaults.call_text, base.call_text),
        call_emoji=_first(stored.call_emoji, defaults.call_emoji, base.call_emoji),
        meeting_text=_first(stored.meeting_text, defaults.meeting_text, base.meeting_text),
        meeting_emoji=_first(stored.meeting_emoji, defaults.meeting_emoji, base.meeting_emoji),
        sync_meetings=_first(stored.sync_meetings, defaults.sync_meetings, base.sync_meetings),
        call_types=_first(stored.call_types, defaults.call_types, base.call_types),
        external_call_text=_first(
            stored.external_call_text, defaults.external_call_text, base.external_call_text
        ),
        internal_call_text=_first(
            stored.internal_call_text, defaults.internal_call_text, base.internal_call_text
        ),
        inbound_call_text=_first(
            stored.inbound_call_text, defaults.inbound_call_text, base.inbound_call_text
        ),
        outbound_call_text=_first(
            stored.outbound_call_text, defaults.outbound_call_text, base.outbound_call_text
        ),
        snooze=_first(stored.snooze, defaults.snooze, base.snooze),
        huddle_busy=_first(stored.huddle_busy, defaults.huddle_busy, base.huddle_busy),
    )


async def effective_preferences(store: Store, team_id: str, user_id: str) -> StatusPreferences:
    """A person's choices with the workspace's, then the bot's, filling the gaps."""
    stored = await store.preferences(team_id, user_id)
    defaults = await store.workspace_defaults(team_id)
    return combine(stored, defaults)


async def everyone_effective(
    store: Store, team_id: str
) -> tuple[dict[str, StatusPreferences], WorkspaceDefaults]:
    """Every stored person's effective preferences, and the workspace's defaults, in two reads."""
    defaults = await store.workspace_defaults(team_id)
    everyone = await store.everyone_preferences(team_id)
    return {stored.user_id: combine(stored, defaults) for stored in everyone}, defaults
