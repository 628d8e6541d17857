"""Composition root: builds every part from Settings and wires them together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Secret, Settings
from bot.errors import ConfigError
from bot.mapping import link_by_email
from bot.presence import Availability, Presence
from bot.ringcentral.client import DEFAULT_MAX_ATTEMPTS, RingCentralClient
from bot.ringcentral.directory import Directory
from bot.ringcentral.subscriber import LinkState, Subscriber
from bot.slack import blocks
from bot.slack.app import BotIdentity, SlackApp, UserTokens
from bot.slack.boards import BoardRefresher
from bot.slack.call_model import CallLengthModel
from bot.slack.commands import RcStatusHandlers
from bot.slack.notifier import FreeNotifier
from bot.slack.people import SlackPeople
from bot.slack.scheduler import Desire, SendOutcome, StatusScheduler
from bot.slack.status import StatusWriter
from bot.store import Store
from bot.supervisor import Supervisor
from bot.sync import PresenceCoordinator, PresenceMemory, TransitionConsumer

log = logging.getLogger(__name__)


def ringcentral_client(
    settings: Settings, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> RingCentralClient:
    """The RingCentral client for these settings; ConfigError names each missing credential."""
    client_id, secret, jwt = settings.rc_client_id, settings.rc_client_secret, settings.rc_jwt
    if not (client_id and secret and jwt):
        raise ConfigError(
            [p for p in settings.missing_for_run() if p.startswith(("RC_CLIENT", "RC_JWT"))]
        )
    return RingCentralClient(
        server_url=settings.rc_server_url,
        client_id=client_id,
        client_secret=secret,
        jwt=jwt,
        rate_window=settings.rate_window_seconds,
        max_attempts=max_attempts,
    )


@dataclass(slots=True)
class PresencePipeline:
    """RingCentral's side of the bot: who is on the phone, kept current, never missing a change."""

    client: RingCentralClient
    directory: Directory
    coordinator: PresenceCoordinator
    subscriber: Subscriber

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        consumers: Iterable[TransitionConsumer] = (),
        memory: PresenceMemory | None = None,
    ) -> PresencePipeline:
        client = ringcentral_client(settings)
        directory = Directory(client, max_age=settings.directory_refresh_seconds)
        coordinator = PresenceCoordinator(
            client,
            directory,
            consumers=consumers,
            memory=memory,
            snapshot_interval=settings.presence_snapshot_seconds,
            directory_interval=settings.directory_refresh_seconds,
        )
        # Heartbeats must fit inside the gateway's idle timeout, which time scaling shortens too.
        heartbeat = min(300.0, settings.rate_window_seconds * 5)
        subscriber = Subscriber(
            client,
            coordinator,
            detailed_extensions=settings.rc_detailed_extensions,
            heartbeat_interval=heartbeat,
        )
        return cls(client, directory, coordinator, subscriber)

    async def start(self, supervisor: Supervisor) -> None:
        await self.prepare()
        self.start_tasks(supervisor)

    async def prepare(self) -> None:
        """Log in and list users first: a bad credential fails here, loudly."""
        await self.client.login()
        await self.directory.refresh()
        restored = await self.coordinator.restore()
        if restored:
            log.info("restored the last known presence of %d extensions", restored)

    def start_tasks(self, supervisor: Supervisor) -> None:
        """The subscription comes before the first snapshot so no change falls between them:
        the subscriber asks for a snapshot as soon as it has subscribed."""
        supervisor.start("ringcentral-token", self.client.keep_token_fresh)
        supervisor.start("ringcentral-subscriber", self.subscriber.run, stop=self.subscriber.stop)
        supervisor.start("presence-snapshots", self.coordinator.run_snapshots)
        supervisor.start("ringcentral-directory", self.coordinator.run_directory)
        supervisor.start("presence-persistence", self.coordinator.run_persistence)


class Bot:
    """The whole bot: presence pipeline, status writer, Slack app and HTTP server, supervised."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        identity: BotIdentity,
        slack: SlackApp,
        writer: StatusWriter,
        pipeline: PresencePipeline,
        people: SlackPeople,
        supervisor: Supervisor,
        notifier: FreeNotifier,
        http: aiohttp.ClientSession,
    ) -> None:
        self.settings = settings
        self._http = http
        self.store = store
        self.identity = identity
        self.slack = slack
        self.writer = writer
        self.pipeline = pipeline
        self.people = people
        self.supervisor = supervisor
        self.notifier = notifier
        self.handlers: RcStatusHandlers | None = None
        self.boards: BoardRefresher | None = None
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self.http_port: int | None = None

    @classmethod
    async def create(cls, settings: Settings) -> Bot:
        """Check the configuration, open the store and learn who our bot token is."""
        problems = settings.missing_for_run()
        if problems:
            raise ConfigError(problems)
        bot_token = settings.slack_bot_token
        assert bot_token is not None
        store = Store(settings.database_url, client_id=settings.slack_client_id)
        await store.open()
        # One connection pool for every Web API call: without it slack_sdk opens (and, against
        # the real Slack, handshakes) a new connection for each users.profile.set.
        http = aiohttp.ClientSession()
        try:
            lookup = AsyncWebClient(base_url=settings.slack_api_url, session=http)
            try:
                identity = await BotIdentity.discover(lookup, bot_token.reveal())
            except SlackApiError as exc:
                raise ConfigError(
                    [
                        f"SLACK_BOT_TOKEN was refused by Slack ({exc.response.get('error')}); "
                        "copy it again from OAuth & Permissions on your Slack app's page."
                    ]
                ) from None
            return cls._assemble(settings, store, identity, http)
        except BaseException:
            await http.close()
            await store.close()
            raise

    @classmethod
    def _assemble(
        cls, settings: Settings, store: Store, identity: BotIdentity, http: aiohttp.ClientSession
    ) -> Bot:
        tokens = UserTokens(store.installation_store, identity.team_id)
        slack = SlackApp(
            identity=identity,
            api_url=settings.slack_api_url,
            signing_secret=_reveal(settings.slack_signing_secret),
            client_id=settings.slack_client_id,
            client_secret=_reveal(settings.slack_client_secret),
            authorize_url=settings.slack_authorize_url,
            redirect_url=(settings.public_url.rstrip("/") + "/slack/oauth_redirect")
            if settings.public_url
            else None,
            installations=store.installation_store,
            oauth_states=store.oauth_state_store,
            tokens=tokens,
            socket_mode=settings.socket_mode,
            http=http,
        )
        # The simulators compress time; every duration the scheduler keeps follows the window.
        scale = settings.rate_window_seconds / 60.0
        admin_token = _reveal(settings.slack_admin_user_token)

        def scheduler(send: Callable[[Desire, int], Awaitable[SendOutcome]]) -> StatusScheduler:
            return StatusScheduler(
                send,
                writes_per_window=settings.slack_profile_writes_per_minute,
                writes_per_profile=settings.slack_writes_per_profile_per_minute,
                distinct_profiles=settings.slack_admin_profiles_per_minute if admin_token else None,
                window=settings.rate_window_seconds,
                status_ttl=settings.status_ttl_seconds,
                call_debounce=settings.call_debounce_seconds,
                gap_hold=2.0 * scale,
                extend_lead=30.0 * scale,
                release_grace=5.0 * scale,
                min_horizon=20.0 * scale,
                call_model=CallLengthModel(prior_mean=240.0 * scale, longest=86_400.0 * scale),
                meeting_model=CallLengthModel(prior_mean=1800.0 * scale, longest=86_400.0 * scale),
            )

        notices = TokenLostNotice(store, slack, identity.team_id, settings.connect_url)
        writer = StatusWriter(
            team_id=identity.team_id,
            store=store,
            client=AsyncWebClient(base_url=settings.slack_api_url, session=http),
            tokens=tokens,
            scheduler_factory=scheduler,
            notice=notices,
            admin_token=admin_token,
        )
        slack.attach(writer)
        pipeline = PresencePipeline.build(settings, consumers=[writer], memory=store)
        pipeline.coordinator.add_snapshot_listener(writer)
        people = SlackPeople(slack.client, identity.team_id)

        def free_text(
            target_id: str,
            was: Availability | None,
            busy_since: datetime | None,
            freed_at: datetime,
        ) -> tuple[str, list[Any]]:
            return blocks.free_dm(target_id, was=was, busy_since=busy_since, now=freed_at)

        notifier = FreeNotifier(
            store=store,
            team_id=identity.team_id,
            direct_message=slack.direct_message,
            free_text=free_text,
            free_debounce=settings.free_debounce_seconds,
            expiry_interval=settings.rate_window_seconds,
        )
        bot = cls(
            settings,
            store=store,
            identity=identity,
            slack=slack,
            writer=writer,
            pipeline=pipeline,
            people=people,
            supervisor=Supervisor(),
            notifier=notifier,
            http=http,
        )
        handlers = RcStatusHandlers(
            store=store,
            team_id=identity.team_id,
            presences=BotPresences(bot),
            sync=BotSyncControl(bot, tokens),
            client=slack.client,
            install_url=settings.connect_url,
            kick_watches=notifier.kick,
        )
        handlers.register(slack.app)
        bot.handlers = handlers
        bot.boards = BoardRefresher(
            viewers_of=handlers.viewers_of,
            publish=handlers.publish_home,
            window=settings.rate_window_seconds,
        )
        writer.add_availability_listener(notifier.on_availability)
        writer.add_availability_listener(bot.boards.on_availability)
        return bot

    async def start(self) -> None:
        """Start in the order that loses nothing: state first, then the feeds, then the doors."""
        await self.pipeline.prepare()
        await self.people.refresh()
        await self.refresh_links()
        book = self.pipeline.coordinator.book
        presences = {
            extension_id: (known.availability, _busy_since(known))
            for extension_id in book.extension_ids()
            if (known := book.get(extension_id)) is not None
        }
        await self.writer.load(
            [(link.user_id, link.extension_id) for link in await self.store.links(self.team_id)],
            {person.id: person.status for person in self.people},
            presences,
        )
        self.supervisor.start("status-scheduler", self.writer.scheduler.run)
        self.supervisor.start("free-notifier", self.notifier.run)
        self.supervisor.start("status-upkeep", self._upkeep)
        if self.boards is not None:
            self.supervisor.start("home-boards", self.boards.run)
        self.pipeline.start_tasks(self.supervisor)
        await self._serve()
        log.info("rcstatus is running for workspace %s", self.team_id)

    @property
    def team_id(self) -> str:
        return self.identity.team_id

    async def refresh_links(self) -> None:
        directory = self.pipeline.directory

        def extension_for(email: str) -> str | None:
            extension = directory.by_email(email)
            return extension.id if extension is not None else None

        await link_by_email(self.store, self.team_id, self.people, extension_for)

    async def _upkeep(self) -> None:
        """Claims Slack already expired, and the people mapping as both directories change."""
        interval = self.settings.rate_window_seconds
        mapping_every = max(1, int(self.settings.directory_refresh_seconds / interval))
        tick = 0
        while True:
            await asyncio.sleep(interval)
            await self.writer.sweep()
            tick += 1
            if tick % mapping_every == 0:
                await self.people.refresh()
                await self.refresh_links()
                links = await self.store.links(self.team_id)
                await self.writer.set_links([(lk.user_id, lk.extension_id) for lk in links])

    async def _serve(self) -> None:
        application = self.slack.web_application(self.health)
        self._runner = web.AppRunner(application, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host=self.settings.host, port=self.settings.port)
        await site.start()
        addresses = self._runner.addresses
        self.http_port = int(addresses[0][1]) if addresses else self.settings.port
        if self.settings.socket_mode:
            app_token = _reveal(self.settings.slack_app_token)
            self._socket = AsyncSocketModeHandler(self.slack.app, app_token)
            await self._socket.connect_async()  # type: ignore[no-untyped-call]

    async def health(self) -> tuple[bool, dict[str, Any]]:
        subscriber = self.pipeline.subscriber.health
        ringcentral_ok = subscriber.state is LinkState.CONNECTED
        slack_ok = True
        if self._socket is not None:
            slack_ok = bool(await self._socket.client.is_connected())
        tasks = {name: h.running for name, h in self.supervisor.health().items()}
        return ringcentral_ok and slack_ok, {
            "ringcentral": subscriber.as_dict(),
            "slack": {"socket_mode": self._socket is not None, "connected": slack_ok},
            "tasks": tasks,
            "pending_writes": self.writer.scheduler.pending(),
        }

    async def stop(self) -> None:
        """Everything stopped and awaited within a few seconds (SIGTERM)."""
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
        await self.supervisor.stop(grace=3.0)
        if self._runner is not None:
            await self._runner.cleanup()
        await self._http.close()
        await self.store.close()


class BotPresences:
    """Availability and extensions for the Slack handlers, which know nothing of RingCentral."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    def availability(self, user_id: str) -> tuple[Availability, datetime] | None:
        extension_id = self._bot.writer.extension_of(user_id)
        if extension_id is None:
            return None
        known = self._bot.pipeline.coordinator.book.get(extension_id)
        if known is None:
            return None
        return known.availability, known.on_call_since or known.availability_since

    def extension_id_for_number(self, number: str) -> str | None:
        extension = self._bot.pipeline.directory.by_number(number)
        return extension.id if extension else None

    def extension_number(self, extension_id: str) -> str | None:
        extension = self._bot.pipeline.directory.by_id(extension_id)
        return extension.number if extension else None

    def user_for_email(self, email: str) -> str | None:
        person = self._bot.people.by_email(email)
        return person.id if person else None


class BotSyncControl:
    def __init__(self, bot: Bot, tokens: UserTokens) -> None:
        self._bot = bot
        self._tokens = tokens

    async def preferences_changed(self, user_id: str) -> None:
        await self._bot.writer.preferences_changed(user_id)

    async def links_changed(self) -> None:
        links = await self._bot.store.links(self._bot.team_id)
        await self._bot.writer.set_links([(link.user_id, link.extension_id) for link in links])

    async def is_connected(self, user_id: str) -> bool:
        return await self._tokens.user_token(user_id) is not None


class TokenLostNotice:
    """Tells a person once that their connection broke, and how to reconnect."""

    def __init__(self, store: Store, slack: SlackApp, team_id: str, connect_url: str) -> None:
        self._store = store
        self._slack = slack
        self._team_id = team_id
        self._connect_url = connect_url

    async def token_lost(self, user_id: str) -> None:
        prefs = await self._store.preferences(self._team_id, user_id)
        if prefs.disconnected_notified_at is not None:
            return
        text = (
            "I can no longer update your Slack status from your phone: your connection to "
            f"rcstatus was revoked or expired. Reconnect here: {self._connect_url}"
        )
        if await self._slack.direct_message(user_id, text):
            await self._store.update_preferences(
                self._team_id, user_id, disconnected_notified_at=datetime.now(UTC)
            )

    async def reconnected(self, user_id: str) -> None:
        """A later loss deserves its own notice."""
        prefs = await self._store.preferences(self._team_id, user_id)
        if prefs.disconnected_notified_at is not None:
            await self._store.update_preferences(
                self._team_id, user_id, disconnected_notified_at=None
            )


def _reveal(secret: Secret | None) -> str | None:
    return secret.reveal() if secret is not None else None


def _busy_since(presence: Presence) -> float | None:
    since = presence.on_call_since or presence.availability_since
    return since.timestamp() if since is not None else None


async def run_bot(settings: Settings, stop: asyncio.Event) -> None:
    """`rcstatus-bot run`: start, serve until `stop` is set (SIGTERM/SIGINT), stop cleanly."""
    bot = await Bot.create(settings)
    try:
        await bot.start()
        await stop.wait()
        log.info("stopping")
    finally:
        await bot.stop()
