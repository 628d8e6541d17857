"""The app permissions the bot needs, as the Developer Console labels them and tokens spell them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class AppPermission:
    """One checkbox under the app's Settings → App Permissions in the Developer Console."""

    label: str
    """The checkbox's label, as an administrator sees it."""
    scope_names: tuple[str, ...]
    """How a token's `scope` may spell it: names differ between RingCentral's own sources."""


READ_ACCOUNTS: Final = AppPermission("Read Accounts", ("ReadAccounts",))
READ_PRESENCE: Final = AppPermission("Read Presence", ("ReadPresence",))
# reference/ringcentral.md §0: one checkbox, spelt three ways by RingCentral's own sources.
WEBSOCKET_SUBSCRIPTIONS: Final = AppPermission(
    "WebSocket Subscriptions", ("SubscriptionWebSocket", "WebSocketsSubscriptions", "WebSocket")
)
# Optional: only huddle → Busy (PUT .../presence) needs it; docs/controls.md.
EDIT_PRESENCE: Final = AppPermission("Edit Presence", ("EditPresence",))
