"""A Slack simulator on one port: Web API, Socket Mode, OAuth, response_urls and a control API."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Collection, Mapping
from typing import Any, Literal

import aiohttp
from aiohttp import web

from bot.sim.company import Company
from bot.sim.limits import TimeScale
from bot.sim.slack import payloads
from bot.sim.slack.control import ControlApi, ControlError
from bot.sim.slack.delivery import DEFAULT_RESPONSE_WAIT, AppLink, Delivery, ResponseUrls
from bot.sim.slack.oauth import OAuth, run_install_flow
from bot.sim.slack.state import (
    DEFAULT_BOT_SCOPES,
    DEFAULT_EVENT_SUBSCRIPTIONS,
    DEFAULT_USER_SCOPES,
    STATUS_TEXT_LIMIT,
    AppIdentity,
    Message,
    SimUser,
    Stats,
    Workspace,
    valid_emoji,
)
from bot.sim.slack.webapi import DEFAULT_TIER_LIMITS, RateLimits, WebApi

log = logging.getLogger(__name__)

REAL_TIME = TimeScale()
SHUTDOWN_TIMEOUT = 2.0


class SlackSimulator:
    """One simulated workspace with the app installed, served on `url`."""

    def __init__(
        self,
        company: Company,
        *,
        time_scale: TimeScale = REAL_TIME,
        host: str = "127.0.0.1",
        port: int = 0,
        app_url: str = "http://127.0.0.1:3000",
        tier_limits: Mapping[int, int] | None = None,
        profile_writes_per_profile: int = 10,
        profiles_per_token: int = 30,
        event_subscriptions: Collection[str] = DEFAULT_EVENT_SUBSCRIPTIONS,
        bot_scopes: Collection[str] = DEFAULT_BOT_SCOPES,
    ) -> None:
        identity = AppIdentity.derive(company)
        self.identity = identity
        self.team_id = identity.team_id
        self.app_id = identity.app_id
        self.bot_user_id = identity.bot_user_id
        self.bot_token = identity.bot_token
        self.app_token = identity.app_token
        self.signing_secret = identity.signing_secret
        self.client_id = identity.client_id
        self.client_secret = identity.client_secret
        self.time_scale = time_scale
        self._host = host
        self._port = port
        # An app installed with fewer scopes than the manifest asks for, for doctor tests.
        self._workspace = Workspace(company, identity, bot_scopes=bot_scopes)
        self._oauth = OAuth(self._workspace, time_scale)
        self._huddles = 0
        self._link = AppLink(
            self._workspace, time_scale, app_url=app_url, event_subscriptions=event_subscriptions
        )
        limits = RateLimits(
            time_scale,
            {**DEFAULT_TIER_LIMITS, **(tier_limits or {})},
            profile_writes_per_profile,
            profiles_per_token,
        )
        self._api = WebApi(
            self._workspace,
            self._oauth,
            limits,
            on_status_changed=self._status_changed,
            socket_url=self._socket_url,
        )
        self._trigger_rng = random.Random(f"rcstatus-slack-sim/{company.seed}/triggers")
        self._control = ControlApi(self)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(
            [
                web.route("*", "/api/{method}", self._api.handle),
                web.get("/link/", self._link.handle_socket),
                web.get("/oauth/v2/authorize", self._authorize_page),
                web.post("/commands/{team}/{number}/{secret}", self._link.responses.handle),
                web.post("/actions/{team}/{number}/{secret}", self._link.responses.handle),
                *self._control.routes(),
            ]
        )
        # In-flight control calls wait at most a few seconds, so shutdown need not wait longer.
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        # Bound to every interface, the simulator is still reached locally through loopback.
        reachable = "127.0.0.1" if self._host in ("", "0.0.0.0") else self._host
        self._url = f"http://{reachable}:{port}"
        await self._link.start()

    async def stop(self) -> None:
        await self._link.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Base URL; the Web API lives at url + "/api/"."""
        if self._url is None:
            raise RuntimeError("SlackSimulator is not started")
        return self._url

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @property
    def authorize_url(self) -> str:
        return f"{self.url}/oauth/v2/authorize"

    @property
    def app_url(self) -> str:
        return self._link.app_url

    @app_url.setter
    def app_url(self, value: str) -> None:
        self._link.app_url = value.rstrip("/")

    def _socket_url(self) -> str:
        ticket = self._link.issue_socket_ticket()
        ws_base = self.url.replace("http://", "ws://", 1)
        return f"{ws_base}/link/?ticket={ticket}&app_id={self.app_id}"

    # -- people and statuses ----------------------------------------------------------------

    def _user_summary(self, user: SimUser) -> dict[str, Any]:
        now = time.time()
        full = self._workspace.user_json(user, with_email=True, now=now)
        profile = full["profile"]
        return {
            "id": user.id,
            "name": user.name,
            "real_name": user.real_name,
            "email": user.email,
            "is_admin": full["is_admin"],
            "is_owner": full["is_owner"],
            "status_text": profile["status_text"],
            "status_emoji": profile["status_emoji"],
            "status_expiration": profile["status_expiration"],
            "authorized": self._workspace.live_user_token(user.id) is not None,
            "snooze_enabled": user.snoozed(now),
            "snooze_endtime": user.snooze_endtime if user.snoozed(now) else 0,
            "dnd_schedule": [user.dnd_start, user.dnd_end] if user.dnd_end else None,
            "in_huddle": user.huddle_state != "default_unset",
        }

    def _human(self, user_id: str) -> SimUser:
        try:
            return self._workspace.human(user_id)
        except KeyError:
            raise ControlError(404, f"no such user: {user_id}") from None

    def users(self) -> list[dict[str, Any]]:
        """Every person with their live status and whether they hold a live user token."""
        return [self._user_summary(user) for user in self._workspace.iter_humans()]

    def user(self, user_id: str) -> dict[str, Any]:
        return self._user_summary(self._human(user_id))

    def set_status(
        self, user_id: str, status_text: str, status_emoji: str, status_expiration: int = 0
    ) -> dict[str, Any]:
        """The person edits their own status in Slack (empty text and emoji clear it)."""
        user = self._human(user_id)
        if len(status_text) > STATUS_TEXT_LIMIT:
            raise ControlError(400, "too_long")
        if status_emoji and not valid_emoji(status_emoji):
            raise ControlError(400, "invalid_emoji")
        now = time.time()
        before = user.status(now)
        user.status_text, user.status_emoji = status_text, status_emoji
        user.status_expiration = 0 if not (status_text or status_emoji) else status_expiration
        user.updated = int(now)
        if user.status(now) != before:
            self._status_changed(user)
        return self._user_summary(user)

    def set_huddle(self, user_id: str, in_huddle: bool) -> dict[str, Any]:
        """The person joins or leaves a huddle: Slack sends `user_huddle_changed` (same shape as
        `user_change`, with `huddle_state` in the profile) to apps subscribed to it."""
        user = self._human(user_id)
        now = time.time()
        state = "in_a_huddle" if in_huddle else "default_unset"
        if state != user.huddle_state:
            self._huddles += 1
            user.huddle_state = state
            user.huddle_call_id = f"R{self._huddles:010d}" if in_huddle else ""
            # Slack sets an expected end while in a huddle and clears it when they leave.
            user.huddle_expiration = int(now) + 3600 if in_huddle else 0
            user.updated = int(now)
            user_json = self._workspace.user_json(user, with_email=True, now=now)
            self._link.emit_event(payloads.user_huddle_changed(user_json))
        return self._user_summary(user)

    def set_dnd(
        self,
        user_id: str,
        *,
        snooze_minutes: int | None = None,
        schedule: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """The person snoozes notifications (0 ends it) or sets a DND schedule themselves."""
        user = self._human(user_id)
        now = time.time()
        if snooze_minutes is not None:
            if snooze_minutes < 0:
                raise ControlError(400, "snooze_minutes must not be negative")
            user.snooze_endtime = int(now) + snooze_minutes * 60 if snooze_minutes else 0
        if schedule is not None:
            user.dnd_start, user.dnd_end = schedule
        return self._user_summary(user)

    def snooze_calls(self) -> list[dict[str, Any]]:
        """Every dnd.setSnooze and dnd.endSnooze that succeeded, oldest first."""
        return list(self._workspace.snooze_calls)

    def _status_changed(self, user: SimUser) -> None:
        user_json = self._workspace.user_json(user, with_email=True, now=time.time())
        self._link.emit_event(payloads.user_status_changed(user_json))

    def grant_user_token(self, user_id: str, scopes: Collection[str] = DEFAULT_USER_SCOPES) -> str:
        """Issue the user's xoxp token without the browser flow (for benchmarks with many users)."""
        return self._workspace.grant_user_token(self._human(user_id).id, scopes).value

    def issued_secrets(self) -> set[str]:
        """The app's credentials and everything issued so far (for log-leak tests): every token,
        OAuth code, Socket Mode ticket and response_url (whole, and its secret last part)."""
        identity = self.identity
        found = {
            identity.signing_secret,
            identity.client_secret,
            identity.verification_token,
            *self._workspace.tokens,
            *self._oauth.issued_codes,
            *self._link.issued_tickets,
        }
        for path in self._link.responses.issued_paths:
            found |= {self.url + path, path.rsplit("/", 1)[1]}
        return found

    def revoke(self, user_id: str) -> list[str]:
        """The user removes the app's access: their tokens die and the app hears tokens_revoked."""
        user = self._human(user_id)
        revoked = self._workspace.revoke_user_tokens(user.id)
        if revoked:
            self._link.emit_event(payloads.tokens_revoked([user.id]))
        return revoked

    async def authorize(self, user_id: str) -> dict[str, Any]:
        """Run the app's install flow in a scripted browser signed in as `user_id`."""
        user = self._human(user_id)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            outcome = await run_install_flow(
                session,
                user_id=user.id,
                app_url=self.app_url,
                sim_url=self.url,
                authorize_url=self.authorize_url,
                redeemed=lambda: self._oauth.redeemed[user.id],
            )
        token = self._workspace.live_user_token(user.id)
        if outcome.ok and token is not None:
            outcome.scopes = sorted(token.scopes)
        return outcome.to_json()

    # -- what people do to the app ----------------------------------------------------------

    async def send_command(
        self,
        user_id: str,
        command: str,
        text: str = "",
        channel_id: str | None = None,
        *,
        wait: float = DEFAULT_RESPONSE_WAIT,
        expect_responses: int | None = None,
    ) -> dict[str, Any]:
        """Someone types `command text`: the app's ack and what it posted to response_url."""
        user = self._human(user_id)
        if not command.startswith("/") or len(command) < 2:
            raise ControlError(400, "a command starts with /")
        channel = channel_id or self.identity.general_channel_id
        record = self._link.responses.create("commands", user.id, channel)
        payload = payloads.slash_command(
            self.identity,
            user_id=user.id,
            user_name=user.name,
            command=command,
            text=payloads.escape_mentions(text, self._workspace),
            channel_id=channel,
            channel_name=self._channel_name(channel),
            response_url=self.url + record.path,
            trigger=payloads.trigger_id(self._trigger_rng),
        )
        delivery = await self._link.deliver_interaction(
            "slash_commands", payload, accepts_response_payload=True
        )
        return await self._finish(delivery, record, user.id, channel, wait, expect_responses)

    async def click(
        self,
        user_id: str,
        action_id: str,
        value: str | None = None,
        block_id: str | None = None,
        view: Literal["home"] | None = None,
        *,
        wait: float = DEFAULT_RESPONSE_WAIT,
        expect_responses: int | None = None,
    ) -> dict[str, Any]:
        """Someone clicks a button the app showed them, in the Home tab or in a recent message."""
        user = self._human(user_id)
        published: dict[str, Any] | None = None
        message: dict[str, Any] | None = None
        channel: dict[str, str] | None = None
        record = None
        if view == "home":
            published = self._workspace.views.get(user.id)
            if published is None:
                raise ControlError(409, f"{user.id} has no published Home view")
            found = _find_element(published["blocks"], action_id, block_id)
        else:
            found = None
            for candidate in self._workspace.recent_messages(user.id):
                found = _find_element(candidate.blocks, action_id, block_id)
                if found is not None:
                    message = {
                        "type": "message",
                        "ts": candidate.ts,
                        "text": candidate.text,
                        "blocks": candidate.blocks,
                        "is_ephemeral": bool(candidate.extra.get("is_ephemeral")),
                    }
                    channel_id = candidate.channel or self._workspace.dm_channel(user.id)
                    channel = {"id": channel_id, "name": self._channel_name(channel_id)}
                    record = self._link.responses.create("actions", user.id, channel_id)
                    break
        if found is None:
            where = "Home view" if view == "home" else "recent messages"
            raise ControlError(
                409, f"no element with action_id {action_id!r} in {user.id}'s {where}"
            )
        found_block_id, element = found
        action = {
            "action_id": action_id,
            "block_id": found_block_id,
            "text": element.get("text"),
            "value": value if value is not None else element.get("value", ""),
            "type": element.get("type", "button"),
            "action_ts": f"{time.time():.6f}",
        }
        if action["type"] == "users_select":
            # A picker sends whom was picked, not a value (the click's `value` names them).
            action["selected_user"] = action.pop("value") or None
            action.pop("text", None)
        payload = payloads.block_actions(
            self.identity,
            user_id=user.id,
            user_name=user.name,
            action=action,
            trigger=payloads.trigger_id(self._trigger_rng),
            view=published,
            message=message,
            channel=channel,
            response_url=None if record is None else self.url + record.path,
        )
        delivery = await self._link.deliver_interaction(
            "interactive", payload, accepts_response_payload=False
        )
        clicked_in = None if channel is None else channel["id"]
        return await self._finish(delivery, record, user.id, clicked_in, wait, expect_responses)

    async def _finish(
        self,
        delivery: Delivery,
        record: Any,
        user_id: str,
        channel_id: str | None,
        wait: float,
        expect_responses: int | None,
    ) -> dict[str, Any]:
        if delivery.ack:
            self._workspace.record_message(
                Message(
                    kind="ack",
                    channel=channel_id,
                    user=user_id,
                    text=str(delivery.ack.get("text", "")),
                    blocks=list(delivery.ack.get("blocks") or []),
                    ts=self._workspace.next_ts(),
                    extra={
                        "response_type": delivery.ack.get("response_type", "ephemeral"),
                        "is_ephemeral": delivery.ack.get("response_type") != "in_channel",
                    },
                )
            )
        reached_app = delivery.ack is not None or delivery.error == "operation_timeout"
        if record is not None and reached_app:
            delivery.responses = await ResponseUrls.collect(record, wait, expect_responses)
        return delivery.to_json()

    def open_app_home(self, user_id: str) -> str | None:
        """The person opens the app's Home tab; returns the event_id (None if not subscribed)."""
        user = self._human(user_id)
        event = payloads.app_home_opened(
            user.id, self._workspace.dm_channel(user.id), self._workspace.views.get(user.id)
        )
        return self._link.emit_event(event)

    def emit_raw_event(self, event: dict[str, Any]) -> str | None:
        """Any event, however shaped, enveloped and signed as Slack would (for tests of malformed
        events); returns the event_id, or None if the app does not subscribe to its type."""
        return self._link.emit_event(event)

    async def send_raw_interaction(
        self, kind: Literal["slash_commands", "interactive"], payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Any command or block_actions payload, however shaped, delivered and signed as Slack
        would; returns the delivery (ack, HTTP status), never waiting for responses."""
        delivery = await self._link.deliver_interaction(
            kind, payload, accepts_response_payload=kind == "slash_commands"
        )
        return delivery.to_json()

    def _channel_name(self, channel_id: str) -> str:
        if channel_id == self.identity.general_channel_id:
            return "general"
        if self._workspace.dm_user(channel_id) is not None:
            return "directmessage"
        return "privategroup"

    # -- inspection and test switches -------------------------------------------------------

    def messages(
        self, user: str | None = None, kind: str | None = None, channel: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            message.to_json()
            for message in self._workspace.messages
            if (user is None or message.user == user)
            and (kind is None or message.kind == kind)
            and (channel is None or message.channel == channel)
        ]

    def views(self) -> dict[str, dict[str, Any]]:
        return dict(self._workspace.views)

    def profile_writes(
        self, user: str | None = None, since: float | None = None
    ) -> list[dict[str, Any]]:
        return [
            dict(write)
            for write in self._workspace.profile_writes
            if (user is None or write["user"] == user) and (since is None or write["at"] >= since)
        ]

    def inject_fault(
        self,
        method: str,
        status: int,
        count: int = 1,
        retry_after: float = 1.0,
        error: str | None = None,
    ) -> None:
        self._api.inject_fault(method, status, count, retry_after, error)

    def stats(self) -> dict[str, Any]:
        stats = self._workspace.stats
        return {
            "calls": dict(stats.calls),
            "rate_limited": dict(stats.rate_limited),
            "errors": dict(stats.errors),
            "events": dict(stats.events),
            "profile_writes": len(self._workspace.profile_writes),
            "socket_connections": self._link.socket_connections,
            "since": stats.since,
            "time_scale": self.time_scale.factor,
        }

    def reset_stats(self) -> None:
        self._workspace.stats = Stats()
        self._workspace.profile_writes.clear()

    def configure_delivery(
        self, *, signing_secret: str | None = None, timestamp_skew: float = 0.0
    ) -> None:
        """Test switch: sign HTTP deliveries with another secret and/or shift their timestamp."""
        self._link.signing_secret_override = signing_secret
        self._link.timestamp_skew = timestamp_skew

    @property
    def socket_connections(self) -> int:
        return self._link.socket_connections

    async def refresh_sockets(self) -> int:
        """Send Socket Mode's `disconnect` (refresh_requested) to every connection."""
        return await self._link.refresh_sockets()

    # -- HTTP: OAuth page -------------------------------------------------------------------

    async def _authorize_page(self, request: web.Request) -> web.StreamResponse:
        return await self._oauth.authorize_page(request, self.app_url)


def _find_element(
    blocks: list[dict[str, Any]], action_id: str, block_id: str | None
) -> tuple[str, dict[str, Any]] | None:
    """The interactive element with `action_id` (and `block_id`, if given) among `blocks`."""
    for index, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        this_block_id = str(block.get("block_id") or f"b{index}")
        if block_id is not None and this_block_id != block_id:
            continue
        elements = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        if isinstance(block.get("element"), dict):
            elements.append(block["element"])
        for element in elements:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return this_block_id, element
    return None
