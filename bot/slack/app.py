"""The Bolt app: OAuth for per-person tokens, the listeners, and the HTTP endpoints."""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.oauth.async_callback_options import (
    AsyncCallbackOptions,
    AsyncFailureArgs,
    AsyncSuccessArgs,
)
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from bot.logs import quiet_logger
from bot.policy import SlackStatus
from bot.slack import payload
from bot.slack.client_limit import AddressLimiter, client_address
from bot.slack.clients import bot_client
from bot.slack.gate import EventsGate
from bot.slack.people import status_of
from bot.slack.quiet_log import QuietLog
from bot.store import StoreError
from bot.store.oauth_states import OAuthStatesFull

log = logging.getLogger(__name__)

# Only what the code calls (README, "Slack scopes"): /rcstatus; chat.postMessage to a user id,
# which lands in the App Home's Messages tab without conversations.open (so no im:write);
# users.list and users.info, whose profiles carry the status (so no users.profile:read), and the
# user_status_changed event; the emails in them; each person's own users.profile.set.
BOT_SCOPES: Final = ("commands", "chat:write", "users:read", "users:read.email")
# dnd:read and dnd:write: dnd.info before a call, and the snooze during it (docs/controls.md).
USER_SCOPES: Final = ("users.profile:write", "dnd:read", "dnd:write")


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who our bot token is, from auth.test at start."""

    team_id: str
    bot_user_id: str
    bot_id: str | None
    bot_token: str

    @classmethod
    async def discover(cls, client: AsyncWebClient, bot_token: str) -> BotIdentity:
        response = await client.auth_test(token=bot_token)
        return cls(
            team_id=str(response["team_id"]),
            bot_user_id=str(response["user_id"]),
            bot_id=response.get("bot_id"),
            bot_token=bot_token,
        )


class TokenTable(Protocol):
    async def user_tokens(self, team_id: str) -> dict[str, str]: ...


class UserTokens:
    """People's own tokens from Bolt's installation store, held in memory from the start.

    `load` reads everyone's at once, so a presence event never waits on the database for a
    token. Whoever is absent then has none until they connect, and connecting (`forget`) makes
    the next lookup read theirs from the store.
    """

    def __init__(
        self, installations: AsyncInstallationStore, team_id: str, table: TokenTable
    ) -> None:
        self._installations = installations
        self._team_id = team_id
        self._table = table
        self._cache: dict[str, str | None] = {}
        # Asked to read again from the store; bounded by the people of one workspace.
        self._forgotten: set[str] = set()
        self._complete = False

    async def load(self) -> int:
        """Everyone's token, in one read; how many people have one."""
        tokens = await self._table.user_tokens(self._team_id)
        # A lookup that raced the load (and any `forget` since) keeps what it found.
        self._cache = {**tokens, **self._cache}
        self._complete = True
        return len(tokens)

    async def user_token(self, user_id: str) -> str | None:
        if user_id not in self._cache:
            if self._complete and user_id not in self._forgotten:
                return None
            installation = await self._installations.async_find_installation(
                enterprise_id=None, team_id=self._team_id, user_id=user_id
            )
            token = None
            if installation is not None and installation.user_id == user_id:
                token = installation.user_token
            self._cache[user_id] = token
            self._forgotten.discard(user_id)
        return self._cache[user_id]

    async def user_scopes(self, user_id: str) -> frozenset[str] | None:
        """The scopes the person granted when they connected; None when they have not."""
        installation = await self._installations.async_find_installation(
            enterprise_id=None, team_id=self._team_id, user_id=user_id
        )
        if installation is None or installation.user_id != user_id:
            return None
        scopes = installation.user_scopes or []
        if isinstance(scopes, str):
            scopes = scopes.split(",")
        return frozenset(scope.strip() for scope in scopes)

    def forget(self, user_id: str) -> None:
        """Read the person's token from the store again next time (they connected again)."""
        self._cache.pop(user_id, None)
        self._forgotten.add(user_id)

    def mark_gone(self, user_id: str) -> None:
        """Slack refused the stored token for good: none until the person connects again."""
        self._cache[user_id] = None

    async def delete(self, user_id: str) -> None:
        self.forget(user_id)
        await self._installations.async_delete_installation(
            enterprise_id=None, team_id=self._team_id, user_id=user_id
        )


class _StaticAuthorize(AsyncAuthorize):
    """Authorizes every request with our bot token and the person's own token, no auth.test.

    Bolt's default calls auth.test once or twice per request; at a few thousand status events an
    hour that alone would exceed auth.test's rate limit and drop events.
    """

    def __init__(self, identity: BotIdentity, tokens: UserTokens) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._identity = identity
        self._tokens = tokens

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult | None:
        if team_id is not None and team_id != self._identity.team_id:
            log.warning("request from an unknown workspace %s ignored", team_id)
            return None
        user_token = await self._tokens.user_token(user_id) if user_id else None
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=self._identity.team_id,
            bot_user_id=self._identity.bot_user_id,
            bot_id=self._identity.bot_id,
            bot_token=self._identity.bot_token,
            user_id=user_id,
            user_token=user_token,
        )


class StatusEvents(Protocol):
    """What the status writer wants to hear from Slack."""

    async def on_status_changed(self, user_id: str, status: SlackStatus) -> None: ...
    async def token_revoked(self, user_id: str) -> None: ...
    async def connected(self, user_id: str) -> None: ...


class Listeners(Protocol):
    """A set of Bolt listeners (commands, actions, events) registered on the app once."""

    def register(self, app: AsyncApp) -> None: ...


class SlackApp:
    """Builds the AsyncApp and serves it: Socket Mode or HTTP, OAuth either way."""

    def __init__(
        self,
        *,
        identity: BotIdentity,
        client: AsyncWebClient,
        status_events: StatusEvents,
        listeners: Sequence[Listeners],
        api_url: str,
        signing_secret: str | None,
        client_id: str | None,
        client_secret: str | None,
        authorize_url: str,
        redirect_url: str | None,
        installations: AsyncInstallationStore,
        oauth_states: AsyncOAuthStateStore,
        tokens: UserTokens,
        socket_mode: bool,
        http: aiohttp.ClientSession | None = None,
        install_limit: AddressLimiter | None = None,
        proxy_hops: int = 0,
    ) -> None:
        self.identity = identity
        self.tokens = tokens
        self.socket_mode = socket_mode
        self.client = client
        self._events = status_events
        self._gate = EventsGate(signing_secret) if signing_secret and not socket_mode else None
        # Not `or`: an empty limiter is falsy (it has a length).
        self._install_limit = AddressLimiter(0) if install_limit is None else install_limit
        self._proxy_hops = proxy_hops
        self._quiet = QuietLog(log)
        oauth = None
        if client_id and client_secret:
            oauth = AsyncOAuthSettings(
                client_id=client_id,
                client_secret=client_secret,
                scopes=list(BOT_SCOPES),
                user_scopes=list(USER_SCOPES),
                redirect_uri=redirect_url,
                authorization_url=authorize_url,
                installation_store=installations,
                state_store=oauth_states,
                callback_options=AsyncCallbackOptions(
                    success=self._installed, failure=self._install_failed
                ),
            )
        self.app = AsyncApp(
            # Tokenless: Bolt puts each request's authorized token on its own copy.
            # Bolt copies its retry handlers to every listener's client.
            client=bot_client(api_url, http),
            signing_secret=signing_secret or "socket-mode-needs-no-signing-secret",
            # Bolt accepts an AsyncAuthorize instance here, though its annotation says callable.
            authorize=_StaticAuthorize(identity, tokens),  # type: ignore[arg-type]
            oauth_settings=oauth,
            request_verification_enabled=not socket_mode,
            # Under slack_bolt's own name, so the SDK clamp keeps its DEBUG lines out.
            logger=quiet_logger("slack_bolt.rcstatus"),
        )
        self._register_status_listeners()
        for group in listeners:
            group.register(self.app)

    # ----------------------------------------------------------------------------- listeners

    def _register_status_listeners(self) -> None:
        app = self.app

        @app.event("user_status_changed")
        async def status_changed(event: dict[str, Any]) -> None:
            user_id = payload.slack_id(event, "user", "id")
            if user_id is None:
                payload.ignored("user_status_changed event", "a user id")
                return
            profile = payload.mapping(event, "user", "profile") or {}
            await self._events.on_status_changed(user_id, status_of(profile))

        @app.event("tokens_revoked")
        async def tokens_revoked(event: dict[str, Any]) -> None:
            users = payload.field(event, "tokens", "oauth")
            if users is None:
                return  # only bot tokens were revoked
            if not isinstance(users, list):
                payload.ignored("tokens_revoked event", "a list of user ids")
                return
            for value in users:
                user_id = payload.as_slack_id(value)
                if user_id is None:
                    payload.ignored("tokens_revoked entry", "a user id")
                    continue
                await self.tokens.delete(user_id)
                await self._events.token_revoked(user_id)

        @app.event("app_uninstalled")
        async def uninstalled() -> None:
            log.warning("the app was uninstalled from the workspace")

    async def _installed(self, args: AsyncSuccessArgs) -> BoltResponse:
        user_id = args.installation.user_id
        log.info("%s connected their Slack status", user_id)
        self.tokens.forget(user_id)
        await self._events.connected(user_id)
        return await args.default.success(args)

    async def _install_failed(self, args: AsyncFailureArgs) -> BoltResponse:
        # Anyone can open the redirect URL with a made-up state or error: quietly, and the
        # reason (which may come from the query string) cut short.
        self._quiet.warning(
            "oauth-failure", "a Slack connection attempt failed: %s", str(args.reason)[:80]
        )
        return await args.default.failure(args)

    # ----------------------------------------------------------------------------- serving

    def web_application(
        self, routes: Sequence[web.RouteDef] = (), middlewares: Sequence[Middleware] = ()
    ) -> web.Application:
        """OAuth pages always, /slack/events only in HTTP mode, beside the bot's own `routes`."""
        application = web.Application(middlewares=middlewares)
        flow = self.app.oauth_flow
        routes = list(routes)
        if flow is not None:
            routes += [
                web.get(flow.install_path, self._oauth_install),
                web.get(flow.redirect_uri_path, self._oauth_callback),
            ]
        if not self.socket_mode:
            routes.append(web.post("/slack/events", self._events_handler))
        application.add_routes(routes)
        return application

    async def _oauth_install(self, request: web.Request) -> web.Response:
        """Bolt's install page, which stores an OAuth state: limited per address, and bounded."""
        flow = self.app.oauth_flow
        assert flow is not None
        address = client_address(request, proxy_hops=self._proxy_hops)
        wait = self._install_limit.acquire(address)
        if wait is not None:
            return _busy_page(429, wait, "You've opened this page many times in a short while.")
        try:
            response = await flow.handle_installation(_oauth_request(request))
        except OAuthStatesFull:
            self._quiet.warning("full", "install pages refused: too many connections in progress")
            return _busy_page(503, 60, "Many people are connecting to Slack right now.")
        except StoreError as exc:
            self._quiet.warning("store", "install pages refused: %s", exc)
            return _busy_page(503, 30, "The app cannot reach its database right now.")
        return await to_aiohttp_response(response)

    async def _oauth_callback(self, request: web.Request) -> web.Response:
        flow = self.app.oauth_flow
        assert flow is not None
        response = await flow.handle_callback(_oauth_request(request))
        return await to_aiohttp_response(response)

    async def _events_handler(self, request: web.Request) -> web.Response:
        if self._gate is None:
            return web.Response(status=401, text="This app takes no HTTP requests from Slack.")
        admitted = await self._gate.admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        response = await self.app.async_dispatch(admitted)
        return await to_aiohttp_response(response)


def _oauth_request(request: web.Request) -> AsyncBoltRequest:
    """The OAuth pages read only the query and cookies; a body (unread) cannot break them."""
    return AsyncBoltRequest(
        body="",
        query=request.query_string,
        headers={key: request.headers.getall(key) for key in request.headers},
    )


def _busy_page(status: int, retry_after: int, reason: str) -> web.Response:
    """A short page a person can read, and a Retry-After a browser or script can follow."""
    minutes = "a minute" if retry_after <= 60 else f"{math.ceil(retry_after / 60)} minutes"
    text = (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Please try again shortly'
        f"</title></head><body><h1>Please try again in {minutes}</h1><p>{html.escape(reason)} "
        "Wait a moment, then reload this page to connect your Slack status.</p></body></html>"
    )
    return web.Response(
        status=status,
        text=text,
        content_type="text/html",
        headers={"Retry-After": str(retry_after)},
    )
