"""A person's effective status preferences: their own choices, then the workspace's, then ours."""

from __future__ import annotations

from bot.policy import StatusPreferences
from bot.store import Preferences, Store, WorkspaceDefaults


async def effective_preferences(store: Store, team_id: str, user_id: str) -> StatusPreferences:
    """A person's choices with the workspace's wording, then the bot's, filling the gaps."""
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


def combine(stored: Preferences, defaults: WorkspaceDefaults) -> StatusPreferences:
    """The person's own choice, else the workspace's, else ours."""
    base = StatusPreferences()
    return StatusPreferences(
        sync_enabled=stored.sync_enabled,
        paused=stored.paused,
        policy=stored.policy,
        call_text=stored.call_text or defaults.call_text or base.call_text,
        call_emoji=stored.call_emoji or defaults.call_emoji or base.call_emoji,
        meeting_text=stored.meeting_text or defaults.meeting_text or base.meeting_text,
        meeting_emoji=stored.meeting_emoji or defaults.meeting_emoji or base.meeting_emoji,
    )
