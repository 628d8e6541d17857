"""Slack's `user_huddle_changed` events, turned into "this person joined or left a huddle"."""

from __future__ import annotations

from typing import Any, Protocol

from slack_bolt.async_app import AsyncApp

from bot.slack import payload

# docs.slack.dev/reference/events/user_huddle_changed: `huddle_state` is "in_a_huddle" while in
# one and "default_unset" otherwise (docs/controls.md has the payload and its sources).
_IN_A_HUDDLE_PREFIX = "in_a_huddle"


class HuddleSink(Protocol):
    async def on_huddle_changed(self, user_id: str, in_huddle: bool) -> None: ...


class HuddleListener:
    """Registers the event listener; knows nothing of what a huddle leads to."""

    def __init__(self, sink: HuddleSink) -> None:
        self._sink = sink

    def register(self, app: AsyncApp) -> None:
        @app.event("user_huddle_changed")
        async def huddle_changed(event: dict[str, Any]) -> None:
            user_id = payload.slack_id(event, "user", "id")
            state = payload.text(event, "user", "profile", "huddle_state")
            if user_id is None or state is None:
                payload.ignored("user_huddle_changed event", "a user id and a huddle_state")
                return
            await self._sink.on_huddle_changed(user_id, state.startswith(_IN_A_HUDDLE_PREFIX))
