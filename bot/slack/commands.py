"""/rcstatus, its buttons and the App Home: thin handlers from parsed requests to replies."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.policy import StatusPolicy, StatusPreferences
from bot.presence import Availability
from bot.slack import blocks, payload
from bot.slack.blocks import Message, NotifyRefusal, PersonView
from bot.slack.boards import BoardRefresher
from bot.slack.command_text import (
    CALL_TYPE_KINDS,
    MAX_ACTIVE_WATCHES,
    MAX_STARRED,
    AdminDefaults,
    Cancel,
    ChangeSettings,
    Command,
    Connect,
    DefaultChange,
    EmailTarget,
    ExtensionTarget,
    Help,
    Link,
    Lookup,
    Me,
    Notify,
    Pause,
    Resume,
    SetFlag,
    SetPolicy,
    SetShare,
    SetStatusEmoji,
    SetStatusText,
    SetSync,
    Target,
    Unlink,
    UserMention,
    Watches,
    parse_command,
)
from bot.slack.home import Connections, HomeTab, Presences, person_view
from bot.slack.link_messages import (
    LINK_APPROVE_ACTION,
    LINK_DENY_ACTION,
    LINK_KEEP_ACTION,
    LINK_MOVE_ACTION,
)
from bot.slack.linking import LinkDesk
from bot.slack.preferences import combine, effective_preferences
from bot.store import Store, StoreError
from bot.store.records import Preferences

log = logging.getLogger(__name__)

SORRY = Message(
    "Sorry, something went wrong on my side. Please try again in a minute.",
    [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "Sorry, something went wrong on my side. Please try again in a minute.",
            },
        }
    ],
)


class StatusSync(Protocol):
    """The status writer, told when someone's choices change."""

    async def preferences_changed(self, user_id: str) -> None: ...
    async def defaults_changed(self) -> None: ...


class SharingChanges(Protocol):
    """Who shares with other systems, kept in memory by the API; told of each saved change."""

    def sharing_changed(self, user_id: str, share: bool) -> None: ...


class WatchKick(Protocol):
    def watch_added(self, target_id: str) -> None: ...


class CommandCounter(Protocol):
    """Counts each subcommand (for /metrics)."""

    def count(self, subcommand: str) -> None: ...


class RcStatusHandlers:
    """Everything /rcstatus and the App Home can do, in words a person reads."""

    def __init__(
        self,
        *,
        store: Store,
        team_id: str,
        presences: Presences,
        connections: Connections,
        status_sync: StatusSync,
        sharing: SharingChanges,
        linking: LinkDesk,
        watches: WatchKick,
        home: HomeTab,
        boards: BoardRefresher,
        install_url: str,
        counter: CommandCounter | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._team_id = team_id
        self._presences = presences
        self._connections = connections
        self._status_sync = status_sync
        self._sharing = sharing
        self._linking = linking
        self._watches = watches
        self._home = home
        self._boards = boards
        self._install_url = install_url
        self._counter = counter
        self._clock = clock

    # ----------------------------------------------------------------------------- Bolt

    def register(self, app: AsyncApp) -> None:
        @app.command("/rcstatus")
        async def rcstatus(ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]) -> None:
            await ack()
            user_id = payload.slack_id(command, "user_id")
            if user_id is None or not payload.text(command, "response_url"):
                payload.ignored("/rcstatus command", "a user id and a response_url")
                return
            reply = await self._safely(self.handle, user_id, command.get("text"))
            reply = await self._with_link_news(user_id, reply)
            await respond(text=reply.text, blocks=reply.blocks, response_type="ephemeral")

        @app.action(blocks.NOTIFY_ACTION)
        async def notify(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
            await ack()
            clicked = _click(body, "notify button")
            if clicked is None:
                return
            user_id, value = clicked
            reply = await self._safely(self.notify, user_id, UserMention(value), None)
            await self._answer_click(body, respond, user_id, reply)

        @app.action(blocks.CANCEL_WATCH_ACTION)
        async def cancel(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
            await ack()
            clicked = _click(body, "cancel button")
            if clicked is None:
                return
            user_id, value = clicked
            reply = await self._safely(self.cancel, user_id, UserMention(value))
            await self._answer_click(body, respond, user_id, reply)

        @app.action(blocks.CONNECT_ACTION)
        async def connect(ack: AsyncAck) -> None:
            await ack()  # a link button: the browser does the work

        async def preference_click(
            ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond
        ) -> None:
            await ack()
            user_id = payload.slack_id(body, "user", "id")
            action = payload.text(payload.first_action(body), "action_id")
            by_action: dict[str, dict[str, Any]] = {
                blocks.SYNC_PAUSE_ACTION: {"paused": True},
                blocks.SYNC_RESUME_ACTION: {"paused": False, "sync_enabled": True},
                blocks.POLICY_RESPECT_ACTION: {"policy": StatusPolicy.RESPECT},
                blocks.POLICY_REPLACE_ACTION: {"policy": StatusPolicy.REPLACE},
            }
            if user_id is None or action not in by_action:
                payload.ignored("preference click", "a user id and a known action")
                return
            changes = by_action[action]
            await self._store.update_preferences(self._team_id, user_id, **changes)
            await self._status_sync.preferences_changed(user_id)
            await self._boards.show(user_id)

        for action_id in (
            blocks.SYNC_PAUSE_ACTION,
            blocks.SYNC_RESUME_ACTION,
            blocks.POLICY_RESPECT_ACTION,
            blocks.POLICY_REPLACE_ACTION,
        ):
            app.action(action_id)(preference_click)

        async def flag_click(ack: AsyncAck, body: dict[str, Any]) -> None:
            await ack()
            user_id = payload.slack_id(body, "user", "id")
            action = payload.text(payload.first_action(body), "action_id")
            flags = {action_id: flag for flag, action_id in blocks.FLAG_ACTIONS.items()}
            value = _value(body)
            if user_id is None or action not in flags or value not in ("on", "off"):
                payload.ignored("switch click", "a user id, a known switch and on or off")
                return
            changes: dict[str, Any] = {flags[action]: value == "on"}
            await self._store.update_preferences(self._team_id, user_id, **changes)
            await self._status_sync.preferences_changed(user_id)
            await self._boards.show(user_id)

        for action_id in blocks.FLAG_ACTIONS.values():
            app.action(action_id)(flag_click)

        @app.action(blocks.STAR_ACTION)
        async def star(ack: AsyncAck, body: dict[str, Any]) -> None:
            await ack()
            user_id = payload.slack_id(body, "user", "id")
            if user_id is None:
                payload.ignored("star pick", "a user id")
                return
            selected = payload.slack_id(payload.first_action(body), "selected_user")
            if selected is not None and selected != user_id:
                await self._store.star(self._team_id, user_id, selected, limit=MAX_STARRED)
            await self._boards.show(user_id)

        @app.action(blocks.UNSTAR_ACTION)
        async def unstar(ack: AsyncAck, body: dict[str, Any]) -> None:
            await ack()
            clicked = _click(body, "unstar button")
            if clicked is None:
                return
            user_id, value = clicked
            await self._store.unstar(self._team_id, user_id, value)
            await self._boards.show(user_id)

        async def link_click(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
            await ack()
            user_id, value = _clicker(body), _value(body)
            action = payload.text(payload.first_action(body), "action_id")
            if not user_id or not value or action is None:
                payload.ignored("link button", "a user id, an action id and a value")
                return
            if action in (LINK_MOVE_ACTION, LINK_KEEP_ACTION):
                confirmed = action == LINK_MOVE_ACTION
                move = functools.partial(self._linking.move, confirmed=confirmed)
                reply = await self._safely(move, user_id, value)
            else:
                approve = action == LINK_APPROVE_ACTION
                decide = functools.partial(self._linking.decide, approve=approve)
                reply = await self._safely(decide, user_id, value)
            if payload.text(body, "response_url"):
                # The buttons were the question; the answer takes their place.
                await respond(text=reply.text, blocks=reply.blocks, replace_original=True)

        for action_id in (
            LINK_MOVE_ACTION,
            LINK_KEEP_ACTION,
            LINK_APPROVE_ACTION,
            LINK_DENY_ACTION,
        ):
            app.action(action_id)(link_click)

        @app.event("app_home_opened")
        async def home_opened(event: dict[str, Any]) -> None:
            if payload.field(event, "tab") not in (None, "home"):
                return
            user_id = payload.slack_id(event, "user")
            if user_id is None:
                payload.ignored("app_home_opened event", "a user id")
                return
            await self._boards.show(user_id)

    async def _safely(self, handler: Callable[..., Awaitable[Message]], *args: Any) -> Message:
        """A failure becomes a friendly reply and one log line, never a stack trace in Slack."""
        try:
            return await handler(*args)
        except Exception:
            log.exception("a /rcstatus request failed")
            return SORRY

    async def _with_link_news(self, user_id: str, reply: Message) -> Message:
        """The reply, led by changes to the person's link; the reply alone if that fails."""
        try:
            return await self._linking.notices(user_id, reply)
        except StoreError as exc:
            # The database is away (a replica answers from memory meanwhile): one line, no trace.
            log.warning("answered without link notices: %s", exc)
            return reply
        except Exception:
            log.exception("could not read link notices")
            return reply

    async def _answer_click(
        self, body: dict[str, Any], respond: AsyncRespond, user_id: str, reply: Message
    ) -> None:
        if body.get("response_url"):
            await respond(
                text=reply.text,
                blocks=reply.blocks,
                replace_original=False,
                response_type="ephemeral",
            )
        await self._boards.show(user_id)

    # ----------------------------------------------------------------------------- commands

    async def handle(self, user_id: str, text: object) -> Message:
        command: Command = parse_command(text if isinstance(text, str) else "")
        now = self._clock()
        # The subcommand's name, never its text: that may name people or carry a status.
        subcommand = type(command).__name__.lower()
        log.info("/rcstatus %s from %s", subcommand, user_id)
        if self._counter is not None:
            self._counter.count(subcommand)
        match command:
            case Lookup(targets=targets):
                return await self.lookup(targets, now)
            case Me():
                return await self.me(user_id, now)
            case Notify(target=target, duration=duration):
                return await self.notify(user_id, target, duration)
            case Cancel(target=target):
                return await self.cancel(user_id, target)
            case Watches():
                return await self.watches(user_id, now)
            case Link(extension_number=number, user=other):
                return await self._linking.link(user_id, number, other)
            case Unlink(user=other):
                return await self._linking.unlink(user_id, other)
            case Pause():
                return await self._pause(user_id, paused=True)
            case Resume():
                return await self._pause(user_id, paused=False)
            case ChangeSettings(changes=changes):
                return await self.settings(user_id, changes)
            case AdminDefaults(changes=changes):
                return await self.admin_defaults(user_id, changes)
            case Connect():
                connected = await self._is_connected(user_id)
                return blocks.connect_reply(self._install_url, connected=connected)
            case Help(reason=reason):
                return blocks.help_reply(reason)
        return blocks.help_reply()

    def _resolve(self, target: Target) -> str | None:
        if isinstance(target, UserMention):
            return target.user_id
        if isinstance(target, EmailTarget):
            return self._presences.user_for_email(target.email)
        return None

    async def _resolve_async(self, target: Target) -> str | None:
        if isinstance(target, ExtensionTarget):
            extension_id = self._presences.extension_id_for_number(target.number)
            if extension_id is None:
                return None
            link = await self._store.link_for_extension(self._team_id, extension_id)
            return link.user_id if link else None
        return self._resolve(target)

    def _person(self, user_id: str) -> PersonView:
        return person_view(self._presences, user_id)

    async def _is_connected(self, user_id: str) -> bool:
        return await self._connections.user_token(user_id) is not None

    async def lookup(self, targets: tuple[Target, ...], now: datetime) -> Message:
        people: list[PersonView] = []
        not_found: list[Target] = []
        for target in targets:
            user_id = await self._resolve_async(target)
            if user_id is None:
                not_found.append(target)
            else:
                people.append(self._person(user_id))
        return blocks.lookup_reply(people, now=now, not_found=not_found)

    async def me(self, user_id: str, now: datetime) -> Message:
        return blocks.me_reply(
            self._person(user_id),
            connected=await self._is_connected(user_id),
            preferences=await self._preferences(user_id),
            install_url=self._install_url,
            now=now,
        )

    async def notify(self, user_id: str, target: Target, duration: timedelta | None) -> Message:
        target_id = await self._resolve_async(target)
        if target_id is None:
            return blocks.not_found_reply(target)
        person = self._person(target_id)
        refusal = None
        if target_id == user_id:
            refusal = NotifyRefusal.YOURSELF
        elif person.availability is None:
            refusal = NotifyRefusal.NOT_LINKED
        elif person.availability is Availability.HIDDEN:
            refusal = NotifyRefusal.HIDDEN
        elif person.availability is Availability.AVAILABLE:
            refusal = NotifyRefusal.ALREADY_FREE
        if refusal is not None:
            return blocks.notify_refusal(target_id, refusal)
        now = self._clock()
        until = now + (duration or timedelta(hours=8))
        before = {w.target_id for w in await self._store.watches_for(self._team_id, user_id)}
        # The store counts and adds in one transaction: concurrent requests cannot pass the cap.
        added = await self._store.add_watch(
            self._team_id,
            user_id,
            target_id,
            until,
            busy_since=person.since,
            limit=MAX_ACTIVE_WATCHES,
        )
        if added is None:
            return blocks.notify_refusal(target_id, NotifyRefusal.TOO_MANY)
        self._watches.watch_added(target_id)
        return blocks.notify_confirmation(target_id, until, now=now, extended=target_id in before)

    async def cancel(self, user_id: str, target: Target) -> Message:
        target_id = await self._resolve_async(target)
        if target_id is None:
            return blocks.not_found_reply(target)
        cancelled = await self._store.cancel_watch(self._team_id, user_id, target_id)
        return blocks.cancel_reply(target_id, cancelled=cancelled)

    async def watches(self, user_id: str, now: datetime) -> Message:
        views, reported = await self._home.watch_views(user_id)
        if reported:
            await self._store.mark_expiry_reported(reported)
        return blocks.watches_reply(views, now=now)

    async def _pause(self, user_id: str, *, paused: bool) -> Message:
        changes: dict[str, Any] = {"paused": paused}
        if not paused:
            changes["sync_enabled"] = True
        await self._store.update_preferences(self._team_id, user_id, **changes)
        await self._status_sync.preferences_changed(user_id)
        preferences = await self._preferences(user_id)
        state = blocks.sync_state(await self._is_connected(user_id), preferences)
        return blocks.sync_reply(state, preferences, install_url=self._install_url)

    async def settings(self, user_id: str, changes: tuple[Any, ...]) -> Message:
        saved = None
        for change in changes:
            update: dict[str, Any] = {}
            if isinstance(change, SetPolicy):
                update["policy"] = change.policy
            elif isinstance(change, SetStatusText | SetStatusEmoji | SetFlag):
                update.update(_default_columns(change))
            elif isinstance(change, SetSync):
                update["sync_enabled"] = change.enabled
            elif isinstance(change, SetShare):
                update["share"] = change.enabled
            await self._store.update_preferences(self._team_id, user_id, **update)
            if isinstance(change, SetShare):
                self._sharing.sharing_changed(user_id, change.enabled)
            saved = change
        if changes:
            await self._status_sync.preferences_changed(user_id)
        stored = await self._store.preferences(self._team_id, user_id)
        preferences = await self._preferences(user_id)
        reconnect = None
        if preferences.snooze and not await self._may_snooze(user_id):
            reconnect = self._install_url
        return blocks.settings_reply(
            preferences,
            connected=await self._is_connected(user_id),
            saved=saved,
            share=stored.share,
            reconnect_for_snooze=reconnect,
        )

    async def _may_snooze(self, user_id: str) -> bool:
        """Whether the person's Slack connection carries the scopes a snooze needs (people who
        connected before they were asked for have to connect again)."""
        scopes = await self._connections.user_scopes(user_id)
        return scopes is None or scopes >= SNOOZE_SCOPES

    async def _preferences(self, user_id: str) -> StatusPreferences:
        return await effective_preferences(self._store, self._team_id, user_id)

    async def admin_defaults(self, user_id: str, changes: tuple[DefaultChange, ...]) -> Message:
        """Workspace admins see and change what everyone without a choice of their own gets."""
        if changes and not await self._linking.is_admin(user_id):
            return blocks.admin_refusal()
        saved = None
        for change in changes:
            await self._store.update_workspace_defaults(self._team_id, **_default_columns(change))
            saved = change
        if changes:
            await self._status_sync.defaults_changed()
        defaults = await self._store.workspace_defaults(self._team_id)
        return blocks.admin_defaults_reply(combine(Preferences(self._team_id, ""), defaults), saved)


SNOOZE_SCOPES: Final = frozenset({"dnd:read", "dnd:write"})


def _default_columns(change: DefaultChange) -> dict[str, Any]:
    """The preference (or workspace default) column a change sets, and to what."""
    if isinstance(change, SetFlag):
        return {change.flag: change.enabled}
    if isinstance(change, SetStatusEmoji):
        return {f"{change.kind}_emoji": change.emoji}
    if change.kind in CALL_TYPE_KINDS:
        return {f"{change.kind}_call_text": change.text}
    return {f"{change.kind}_text": change.text}


def _click(body: dict[str, Any], kind: str) -> tuple[str, str] | None:
    """Who clicked a button and the user id it carries, or None (logged) if either is missing."""
    user_id = payload.slack_id(body, "user", "id")
    value = payload.slack_id(payload.first_action(body), "value")
    if user_id is None or value is None:
        payload.ignored(kind, "a user id and a value")
        return None
    return user_id, value


def _clicker(body: dict[str, Any]) -> str:
    """Who clicked ("" when the payload does not say)."""
    return payload.slack_id(body, "user", "id") or ""


def _value(body: dict[str, Any]) -> str:
    """The clicked button's value ("" when it has none)."""
    return payload.text(payload.first_action(body), "value") or ""
