"""News only the leader acts on (a status set by hand, a connection, a setting), from any replica.

Slack spreads events and commands across every replica's connection, and an HTTP load balancer
across every replica. Whoever receives one of these hands it to the leader's parts: directly
when this replica leads, otherwise as a message to the leader over the replica bus. A message
sent while leadership changes hands may be lost; the new leader reads the state they concern
(tokens, preferences, watches, links, endpoints) from the store when it takes over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final, Protocol

from bot.policy import SlackStatus

log = logging.getLogger(__name__)

TOPIC: Final = "leader"


class Relay(Protocol):
    def send(self, message: dict[str, Any]) -> None:
        """Queue a message for the leader (never waits)."""
        ...


class WriterSide(Protocol):
    async def on_status_changed(self, user_id: str, status: SlackStatus) -> None: ...
    async def token_revoked(self, user_id: str) -> None: ...
    async def connected(self, user_id: str) -> None: ...
    async def preferences_changed(self, user_id: str) -> None: ...
    async def defaults_changed(self) -> None: ...


class WatchSide(Protocol):
    def watch_added(self, target_id: str) -> None: ...


class LinkSide(Protocol):
    async def reload_links(self) -> None: ...


class HuddleSide(Protocol):
    async def on_huddle_changed(self, user_id: str, in_huddle: bool) -> None: ...


class Kickable(Protocol):
    def kick(self) -> None: ...


class EndpointSide(Protocol):
    def endpoints_changed(self) -> None: ...


class SharingSide(Protocol):
    def sharing_changed(self, user_id: str, share: bool) -> None: ...


class LeaderInbox:
    """Implements what Slack's handlers and the API call on the leader's parts, wherever it runs."""

    def __init__(
        self,
        *,
        leading: Callable[[], bool],
        writer: WriterSide,
        watches: WatchSide,
        links: LinkSide,
        huddles: HuddleSide,
        outbox: Kickable,
        endpoints: EndpointSide,
        sharing: SharingSide,
        relay: Relay | None = None,
    ) -> None:
        self._leading = leading
        self._writer = writer
        self._watches = watches
        self._links = links
        self._huddles = huddles
        self._outbox = outbox
        self._endpoints = endpoints
        self._sharing = sharing
        self._relay = relay

    def _here(self) -> bool:
        return self._relay is None or self._leading()

    def _send(self, do: str, **fields: Any) -> None:
        assert self._relay is not None
        self._relay.send({"do": do, **fields})

    # ----------------------------------------------------------------------------- Slack events

    async def on_status_changed(self, user_id: str, status: SlackStatus) -> None:
        if self._here():
            await self._writer.on_status_changed(user_id, status)
        else:
            self._send(
                "status_changed",
                user=user_id,
                text=status.text,
                emoji=status.emoji,
                expiration=status.expiration,
            )

    async def token_revoked(self, user_id: str) -> None:
        if self._here():
            await self._writer.token_revoked(user_id)
        else:
            self._send("token_revoked", user=user_id)

    async def connected(self, user_id: str) -> None:
        if self._here():
            await self._writer.connected(user_id)
        else:
            self._send("connected", user=user_id)

    async def on_huddle_changed(self, user_id: str, in_huddle: bool) -> None:
        if self._here():
            await self._huddles.on_huddle_changed(user_id, in_huddle)
        else:
            self._send("huddle", user=user_id, in_huddle=in_huddle)

    # ----------------------------------------------------------------------------- commands

    async def preferences_changed(self, user_id: str) -> None:
        if self._here():
            await self._writer.preferences_changed(user_id)
        else:
            self._send("preferences_changed", user=user_id)

    async def defaults_changed(self) -> None:
        if self._here():
            await self._writer.defaults_changed()
        else:
            self._send("defaults_changed")

    def watch_added(self, target_id: str) -> None:
        if self._here():
            self._watches.watch_added(target_id)
        else:
            self._send("watch_added", user=target_id)

    async def reload_links(self) -> None:
        if self._here():
            await self._links.reload_links()
        else:
            self._send("links_changed")

    def kick(self) -> None:
        """A DM was queued in the store: the leader's outbox sends it now, not at its next poll."""
        if self._here():
            self._outbox.kick()
        else:
            self._send("dm_queued")

    def endpoints_changed(self) -> None:
        if self._here():
            self._endpoints.endpoints_changed()
        else:
            self._send("endpoints_changed")

    def sharing_changed(self, user_id: str, share: bool) -> None:
        """Every replica hides a person who stopped sharing, the leader's webhooks first."""
        self._sharing.sharing_changed(user_id, share)
        if self._relay is not None:
            self._send("sharing_changed", user=user_id, share=share)

    # ----------------------------------------------------------------------------- the leader

    async def receive(self, message: dict[str, Any]) -> None:
        """A message from another replica: news for every replica, or for the leader only."""
        do = message.get("do")
        user = message.get("user")
        if do in _PER_PERSON and not isinstance(user, str):
            log.warning("dropped a replica message %r without a user", do)
            return
        if do == "sharing_changed" and isinstance(user, str):
            self._sharing.sharing_changed(user, bool(message.get("share")))
            return
        if not self._leading():
            return
        if do == "status_changed" and isinstance(user, str):
            status = SlackStatus(
                text=str(message.get("text") or ""),
                emoji=str(message.get("emoji") or ""),
                expiration=_int(message.get("expiration")),
            )
            await self._writer.on_status_changed(user, status)
        elif do == "token_revoked" and isinstance(user, str):
            await self._writer.token_revoked(user)
        elif do == "connected" and isinstance(user, str):
            await self._writer.connected(user)
        elif do == "huddle" and isinstance(user, str):
            await self._huddles.on_huddle_changed(user, bool(message.get("in_huddle")))
        elif do == "preferences_changed" and isinstance(user, str):
            await self._writer.preferences_changed(user)
        elif do == "defaults_changed":
            await self._writer.defaults_changed()
        elif do == "watch_added" and isinstance(user, str):
            self._watches.watch_added(user)
        elif do == "links_changed":
            await self._links.reload_links()
        elif do == "dm_queued":
            self._outbox.kick()
        elif do == "endpoints_changed":
            self._endpoints.endpoints_changed()
        else:
            log.warning("dropped a replica message this version does not know: %r", do)


_PER_PERSON: Final = frozenset(
    {
        "status_changed",
        "token_revoked",
        "connected",
        "huddle",
        "preferences_changed",
        "watch_added",
        "sharing_changed",
    }
)


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
