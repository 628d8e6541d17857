"""Composition root: builds every part from Settings once, and runs them under one supervisor.

The picture, who owns which state and the path of one presence event are in
docs/architecture.md. Nothing outside this module wires parts together or reaches into one;
the demo, the benchmarks and the tests use `Bot`'s documented surface.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Unpack

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.api.events import AvailabilityFeed
from bot.api.gate import AvailabilityGate
from bot.api.guard import ApiGuard, RequestBudget
from bot.api.keys import ApiKeys
from bot.api.people import PeopleView
from bot.api.routes import API_PREFIX, AvailabilityApi
from bot.api.sharing import SharingIndex
from bot.api.stream import EventStream, StreamLimits
from bot.config import Secret, Settings
from bot.coordinator import (
    Coordinator,
    CoordinatorStats,
    LinkStore,
    PersonConsumer,
    PresenceMemory,
)
from bot.errors import BotError, ConfigError
from bot.health import Health
from bot.huddle import HuddleBusy, HuddleStats
from bot.intake import IntakeStats, IntakeTimer, PresenceIntake
from bot.leader import LeadershipLost, Lease, default_replica_id, fenced
from bot.leader_inbox import TOPIC as LEADER_TOPIC
from bot.leader_inbox import LeaderInbox
from bot.mapping import link_by_email
from bot.metrics import Metrics, Reading
from bot.ports import ensure_port_free, port_problem
from bot.presence import Availability, Presence
from bot.replicas.bus import Envelope, ReplicaBus
from bot.replicas.follower import FollowerPresence
from bot.replicas.mirror import LeaderMirror
from bot.replicas.tail import EventTail
from bot.ringcentral.advice import login_advice
from bot.ringcentral.client import (
    DEFAULT_MAX_ATTEMPTS,
    RingCentralAuthError,
    RingCentralClient,
    RingCentralUnavailable,
    SessionKeeper,
    rate_group,
)
from bot.ringcentral.directory import Directory, Extension
from bot.ringcentral.feed import FeedStats, PresenceFeed, PresenceSnapshots
from bot.ringcentral.subscriber import LinkState, Subscriber
from bot.ringcentral.user_status import UserStatusWriter
from bot.ringcentral.vault import SessionVault
from bot.roster import Roster, availability_of, busy_since
from bot.single import single_process_lock
from bot.slack.app import BotIdentity, SlackApp, UserTokens
from bot.slack.boards import BoardRefresher
from bot.slack.call_model import CallLengthModel
from bot.slack.client_limit import AddressLimiter
from bot.slack.clients import bot_client, profile_client
from bot.slack.commands import RcStatusHandlers
from bot.slack.home import HomeTab
from bot.slack.huddles import HuddleListener
from bot.slack.linking import LinkDesk
from bot.slack.messages import DirectMessages, TokenLostNotice
from bot.slack.notifier import FreeNotifier
from bot.slack.outbox import DmOutbox
from bot.slack.people import SlackPeople
from bot.slack.preferences import effective_preferences
from bot.slack.profiles import SlackProfiles
from bot.slack.scheduler import SchedulerStats, StatusScheduler
from bot.slack.snooze import SnoozeKeeper, SnoozeStats
from bot.slack.status import StatusWriter, WriterStats
from bot.store import PreferenceChanges, Store, StoreError
from bot.store.engine import build_engine, parse_url
from bot.store.extensions import StoredExtension
from bot.store.webhooks import WebhookEndpoint
from bot.supervisor import Supervisor
from bot.webhooks.api import WebhookApi
from bot.webhooks.dispatcher import WebhookDispatcher, WebhookStats
from bot.webhooks.retry import RetryPolicy
from bot.webhooks.sender import AttemptResult, WebhookSender

log = logging.getLogger(__name__)

DATABASE_RETRY: Final = 1.0
"""Seconds between looks at the database while a deposed replica waits to be rebuilt."""


# --------------------------------------------------------------------------------- RingCentral


def ringcentral_client(
    settings: Settings,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    session: SessionKeeper | None = None,
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
        session=session,
    )


def session_vault(settings: Settings, store: Store) -> SessionVault | None:
    """Where RingCentral's session waits between runs; None (log in each start) without a key."""
    key, client_id, jwt = settings.ringcentral_token_key, settings.rc_client_id, settings.rc_jwt
    if key is None or not client_id or jwt is None:
        return None
    return SessionVault(store, key, server_url=settings.rc_server_url, client_id=client_id, jwt=jwt)


@dataclass(frozen=True, slots=True)
class PresencePipeline:
    """RingCentral's side wired to the hub: who is on the phone, kept current, nothing missed.

    RingCentral's code (client, directory, feed, snapshots, subscriber) parses what the platform
    says into domain updates; the coordinator merges them into the roster and tells every
    consumer what changed for whom.
    """

    client: RingCentralClient
    directory: Directory
    snapshots: PresenceSnapshots
    roster: Roster
    coordinator: Coordinator
    intake: PresenceIntake
    feed: PresenceFeed
    subscriber: Subscriber

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        team_id: str,
        roster: Roster,
        links: LinkStore,
        consumers: Sequence[PersonConsumer] = (),
        memory: PresenceMemory | None = None,
        reconnect_backoff: float = 1.0,
        client: RingCentralClient | None = None,
        directory: Directory | None = None,
        intake_timer: IntakeTimer | None = None,
        mirror: LeaderMirror | None = None,
    ) -> PresencePipeline:
        if client is None:
            client = ringcentral_client(settings)
        if directory is None:  # not `or`: an empty Directory is falsy
            directory = Directory(client, max_age=settings.directory_refresh_seconds)
        snapshots = PresenceSnapshots(client)
        coordinator = Coordinator(
            team_id=team_id,
            roster=roster,
            snapshots=snapshots,
            links=links,
            consumers=consumers,
            memory=memory,
            snapshot_interval=settings.presence_snapshot_seconds,
            mirror=mirror,
        )
        intake = PresenceIntake(coordinator, timer=intake_timer)
        listing = directory
        feed = PresenceFeed(
            intake,
            directory,
            directory_interval=settings.directory_refresh_seconds,
            # A colleague's call reaches us with their extension number as the other party.
            internal_number=lambda number: listing.by_number(number) is not None,
        )
        # The heartbeat follows the idle timeout the gateway announces; nothing to scale here.
        subscriber = Subscriber(
            client,
            feed,
            detailed_extensions=settings.rc_detailed_extensions,
            backoff_base=reconnect_backoff,
        )
        return cls(client, directory, snapshots, roster, coordinator, intake, feed, subscriber)

    async def start(self, supervisor: Supervisor) -> None:
        """Log in, take the links, then start the feeds (for a pipeline without the Slack side)."""
        await self.prepare()
        await self.coordinator.reload_links()
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
        supervisor.start("presence-intake", self.intake.run)
        supervisor.start("ringcentral-subscriber", self.subscriber.run, stop=self.subscriber.stop)
        supervisor.start("presence-snapshots", self.coordinator.run_snapshots)
        supervisor.start("ringcentral-directory", self.feed.run_directory)
        supervisor.start("presence-persistence", self.coordinator.run_persistence)


# --------------------------------------------------------------------------------- the bot


def status_scheduler(settings: Settings, *, admin_token: str | None) -> StatusScheduler:
    """Slack's budget and the holds around it, each in the clock it is measured by."""
    service = settings.service_seconds
    return StatusScheduler(
        writes_per_window=settings.slack_profile_writes_per_minute,
        writes_per_profile=settings.slack_writes_per_profile_per_minute,
        distinct_profiles=settings.slack_admin_profiles_per_minute if admin_token else None,
        window=settings.rate_window_seconds,
        status_ttl=settings.status_ttl_seconds,
        call_debounce=settings.call_debounce_seconds,
        # Measured against the expirations we write (STATUS_TTL_SECONDS), so on Slack's clock.
        gap_hold=service(2.0),
        extend_lead=service(30.0),
        release_grace=service(5.0),
        min_horizon=service(20.0),
        # How long people talk is nobody's clock but theirs: the priors never scale.
        call_model=CallLengthModel(prior_mean=240.0),
        meeting_model=CallLengthModel(prior_mean=1800.0),
    )


class _Lookups:
    """Availability and extensions for the Slack handlers, which know nothing of RingCentral."""

    def __init__(self, roster: Roster, directory: Directory, people: SlackPeople) -> None:
        self._roster = roster
        self._directory = directory
        self._people = people

    def availability(self, user_id: str) -> tuple[Availability, datetime] | None:
        presence = self._roster.presence_of(user_id)
        if presence is None:
            return None
        return presence.availability, busy_since(presence)

    def extension_id_for_number(self, number: str) -> str | None:
        extension = self._directory.by_number(number)
        return extension.id if extension else None

    def extension_number(self, extension_id: str) -> str | None:
        extension = self._directory.by_id(extension_id)
        return extension.number if extension else None

    def user_for_email(self, email: str) -> str | None:
        person = self._people.by_email(email)
        return person.id if person else None

    def extension_email(self, extension_id: str) -> str | None:
        extension = self._directory.by_id(extension_id)
        return extension.email if extension else None


class _BusRelay:
    """The leader inbox's messages, sent over the replica bus."""

    def __init__(self, bus: ReplicaBus) -> None:
        self._bus = bus

    def send(self, message: dict[str, Any]) -> None:
        self._bus.publish(LEADER_TOPIC, message)


@dataclass(frozen=True, slots=True)
class Following:
    """What a follower runs to keep its view: the leader's presence, and its recorded events."""

    presence: FollowerPresence
    events: EventTail


def _following(
    team_id: str,
    store: Store,
    bus: ReplicaBus | None,
    roster: Roster,
    gate: AvailabilityGate,
    feed: AvailabilityFeed,
) -> Following | None:
    if bus is None:
        return None
    return Following(
        # The gate only: the leader's consumers act on changes, a follower's only answer.
        presence=FollowerPresence(
            team_id=team_id, roster=roster, store=store, bus=bus, consumers=[gate]
        ),
        events=EventTail(team_id=team_id, feed=feed, store=store, bus=bus),
    )


class _QueuedDms:
    """DMs queued by any replica (link requests), sent at once by whichever replica leads."""

    def __init__(self, outbox: DmOutbox, inbox: LeaderInbox) -> None:
        self._outbox = outbox
        self._inbox = inbox

    async def direct_message(
        self, user_id: str, text: str, blocks: list[Any] | None = None
    ) -> bool:
        queued = await self._outbox.direct_message(user_id, text, blocks)
        if queued:
            self._inbox.kick()
        return queued


class _EndpointChanges:
    """The webhook API's view of the dispatcher: changes reach the leader's, pings go out here."""

    def __init__(self, dispatcher: WebhookDispatcher, inbox: LeaderInbox) -> None:
        self._dispatcher = dispatcher
        self._inbox = inbox

    def endpoints_changed(self) -> None:
        self._inbox.endpoints_changed()

    async def ping(self, endpoint: WebhookEndpoint) -> tuple[str, AttemptResult]:
        return await self._dispatcher.ping(endpoint)


@dataclass(frozen=True, slots=True)
class Services:
    """Every part of one running bot, built once by `Bot.create`; nothing is attached later."""

    settings: Settings
    store: Store
    http: aiohttp.ClientSession
    identity: BotIdentity
    people: SlackPeople
    tokens: UserTokens
    presence: PresencePipeline
    writer: StatusWriter
    notifier: FreeNotifier
    outbox: DmOutbox
    boards: BoardRefresher
    slack: SlackApp
    api: AvailabilityApi
    gate: AvailabilityGate
    feed: AvailabilityFeed
    stream: EventStream
    sharing: SharingIndex
    webhooks: WebhookDispatcher
    scheduler: StatusScheduler
    guard: ApiGuard
    metrics: Metrics
    commands: RcStatusHandlers
    snooze: SnoozeKeeper
    huddles: HuddleBusy
    inbox: LeaderInbox
    lease: Lease | None
    """The leader lease when replicas share PostgreSQL; None leads alone (SQLite)."""
    supervisor: Supervisor
    """Tasks every replica runs (and, leading alone, everything)."""
    leader_tasks: Supervisor
    """Tasks only the leader runs, stopped the moment it is no longer sure it leads."""
    bus: ReplicaBus | None
    """LISTEN/NOTIFY between replicas (PostgreSQL only)."""
    following: Following | None
    """A follower's view of the leader's presence and events (PostgreSQL only)."""
    follower_tasks: Supervisor
    """Tasks only a follower runs, stopped when it takes over."""


def wire(
    settings: Settings,
    *,
    store: Store,
    identity: BotIdentity,
    http: aiohttp.ClientSession,
    consumers: Sequence[PersonConsumer] = (),
    lease: Lease | None = None,
    bus: ReplicaBus | None = None,
) -> Services:
    """Build every part, each given its collaborators through its constructor."""
    team_id = identity.team_id
    admin_token = _reveal(settings.slack_admin_user_token)
    # Which retries each client gets, and why the profile writes get none: bot/slack/clients.py.
    client = bot_client(settings.slack_api_url, http, token=identity.bot_token)
    tokens = UserTokens(store.installation_store, team_id, store)
    people = SlackPeople(client, team_id)
    roster = Roster()
    messages = DirectMessages(client)
    metrics = Metrics()
    scheduler = status_scheduler(settings, admin_token=admin_token)
    outbox = DmOutbox(store=store, team_id=team_id, sender=messages)
    writer = StatusWriter(
        team_id=team_id,
        store=store,
        roster=roster,
        profiles=SlackProfiles(
            client=profile_client(settings.slack_api_url, http),
            tokens=tokens,
            admin_token=admin_token,
        ),
        scheduler=scheduler,
        notice=TokenLostNotice(
            store=store, messages=outbox, team_id=team_id, connect_url=settings.connect_url
        ),
        known_statuses=people,
    )
    notifier = FreeNotifier(
        store=store,
        team_id=team_id,
        roster=roster,
        outbox=outbox,
        free_debounce=settings.free_debounce_seconds,
        expiry_interval=settings.rate_window_seconds,
    )
    rc_client = ringcentral_client(settings, session=session_vault(settings, store))

    async def share_listing(extensions: list[Extension]) -> None:
        await store.replace_extensions(
            [StoredExtension(e.id, e.number, e.name, e.email) for e in extensions]
        )

    directory = Directory(
        rc_client,
        max_age=settings.directory_refresh_seconds,
        # Replicas that never talk to RingCentral resolve numbers and emails from this copy.
        on_listing=share_listing if lease is not None else None,
    )

    async def wants_snooze(user_id: str) -> bool:
        return (await effective_preferences(store, team_id, user_id)).snooze

    async def wants_huddle_busy(user_id: str) -> bool:
        return (await effective_preferences(store, team_id, user_id)).huddle_busy

    snooze = SnoozeKeeper(
        roster=roster,
        # No retries of its own: the keeper budgets its calls and owns 429s, like the writer.
        client=profile_client(settings.slack_api_url, http),
        tokens=tokens,
        wanted=wants_snooze,
        window=settings.rate_window_seconds,
    )
    huddles = HuddleBusy(
        roster=roster, setter=UserStatusWriter(rc_client), wanted=wants_huddle_busy
    )
    lookups = _Lookups(roster, directory, people)
    home = HomeTab(
        store=store,
        team_id=team_id,
        presences=lookups,
        connections=tokens,
        client=client,
        install_url=settings.connect_url,
    )
    boards = BoardRefresher(home=home, window=settings.rate_window_seconds)
    gate = AvailabilityGate()
    sharing = SharingIndex(store, team_id)
    people_view = PeopleView(roster=roster, slack=people, extensions=directory)
    webhooks = WebhookDispatcher(
        store=store,
        team_id=team_id,
        sender=WebhookSender(allow_private=settings.webhook_allow_private_urls),
        retry=RetryPolicy(scale=settings.service_seconds),
        messenger=outbox,
        admins=people.admins,
    )
    mirror = LeaderMirror(bus) if bus is not None else None
    feed = AvailabilityFeed(
        team_id=team_id,
        people=people_view,
        not_sharing=sharing,
        log_store=store,
        listeners=(webhooks,),
        on_recorded=mirror.events_recorded if mirror is not None else None,
    )
    presence = PresencePipeline.build(
        settings,
        team_id=team_id,
        roster=roster,
        links=store,
        consumers=[writer, notifier, boards, gate, feed, snooze, *consumers],
        memory=store,
        client=rc_client,
        directory=directory,
        intake_timer=metrics.intake,
        mirror=mirror,
    )
    inbox = LeaderInbox(
        leading=lambda: leads(lease),
        writer=writer,
        watches=notifier,
        links=presence.coordinator,
        huddles=huddles,
        outbox=outbox,
        endpoints=webhooks,
        sharing=sharing,
        relay=_BusRelay(bus) if bus is not None else None,
    )
    commands = RcStatusHandlers(
        store=store,
        team_id=team_id,
        presences=lookups,
        connections=tokens,
        status_sync=inbox,
        sharing=inbox,
        linking=LinkDesk(
            store=store,
            team_id=team_id,
            extensions=lookups,
            members=people,
            messenger=_QueuedDms(outbox, inbox),
            links=inbox,
        ),
        watches=inbox,
        home=home,
        boards=boards,
        install_url=settings.connect_url,
        counter=metrics.commands,
    )
    slack = SlackApp(
        identity=identity,
        client=client,
        status_events=inbox,
        listeners=[commands, HuddleListener(inbox)],
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
        install_limit=AddressLimiter(settings.install_requests_per_minute),
        proxy_hops=settings.trusted_proxy_hops,
    )
    keys = ApiKeys(store)
    guard = ApiGuard(keys, RequestBudget(settings.api_requests_per_minute))
    stream = EventStream(
        guard=guard,
        keys=keys,
        feed=feed,
        limits=StreamLimits(
            heartbeat=settings.api_stream_heartbeat_seconds,
            max_streams=settings.api_max_streams,
            per_key=settings.api_max_streams_per_key,
        ),
    )

    def staleness() -> float:
        """How long this replica has heard nothing from the leader; 0 while it leads."""
        if bus is None or leads(lease):
            return 0.0
        return bus.stale_for()

    api = AvailabilityApi(
        guard=guard,
        staleness=staleness,
        stale_after=settings.api_stale_after_seconds,
        people=people_view,
        gate=gate,
        not_sharing=sharing,
        stream=stream,
        extra_routes=WebhookApi(
            guard=guard,
            store=store,
            people=people_view,
            dispatcher=_EndpointChanges(webhooks, inbox),
            team_id=team_id,
            allow_private=settings.webhook_allow_private_urls,
            recorded=feed.flush,
        ).routes(),
    )
    return Services(
        settings=settings,
        store=store,
        http=http,
        identity=identity,
        people=people,
        tokens=tokens,
        presence=presence,
        writer=writer,
        notifier=notifier,
        outbox=outbox,
        boards=boards,
        slack=slack,
        api=api,
        gate=gate,
        feed=feed,
        stream=stream,
        sharing=sharing,
        webhooks=webhooks,
        scheduler=scheduler,
        guard=guard,
        metrics=metrics,
        commands=commands,
        snooze=snooze,
        huddles=huddles,
        inbox=inbox,
        lease=lease,
        bus=bus,
        following=_following(team_id, store, bus, roster, gate, feed),
        supervisor=Supervisor(),
        leader_tasks=Supervisor(),
        follower_tasks=Supervisor(),
    )


@dataclass(frozen=True, slots=True)
class BotStats:
    """Counters since start, copied at one moment (for the demo, benchmarks and tests)."""

    writer: WriterStats
    scheduler: SchedulerStats
    coordinator: CoordinatorStats
    intake: IntakeStats
    feed: FeedStats
    free_dms_sent: int
    webhooks: WebhookStats
    """Deliveries made, and how long after the change each reached its receiver."""
    gate_waiting: int
    """API requests held at the gate right now."""
    streams_open: int
    """Event streams (GET /api/v1/events) open right now."""
    extensions_known: int
    people_linked: int
    snooze: SnoozeStats
    huddles: HuddleStats
    snoozes_pending: int
    """People whose notification snooze is still to be set or ended."""


class Bot:
    """The whole bot, built from Settings and supervised: `create`, `start`, `stop`.

    Its surface for the demo, the benchmarks and the tests, which never reach into the parts:
    `team_id`, `settings`, `store` (durable state: links, claims, preferences), `identity`,
    `http_port`, `ready`/`wait_ready()` (the first presence snapshot is in),
    `availability(user_id)`, `presence(extension_id)`, `status_reason(user_id)`,
    `pending_writes()`, `settle()` (nothing being told, no write queued), `set_preferences(…)`,
    `person_connected(user_id)`, `stats()`, `health()`. Extra consumers of every person's
    changes are given to `create`.
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._health = Health(self.health, identity=self.role)
        self.http_port: int | None = None
        self.deposed = asyncio.Event()
        """Set when this replica stopped leading: `run_bot` rebuilds it as a follower."""
        services.metrics.watch(self._reading)

    @classmethod
    async def create(cls, settings: Settings, *, consumers: Sequence[PersonConsumer] = ()) -> Bot:
        """Check the configuration, open the store, learn who our bot token is, wire it all."""
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
            lookup = bot_client(settings.slack_api_url, http)
            try:
                identity = await BotIdentity.discover(lookup, bot_token.reveal())
            except SlackApiError as exc:
                raise ConfigError(
                    [
                        f"SLACK_BOT_TOKEN was refused by Slack ({exc.response.get('error')}); "
                        "copy it again from OAuth & Permissions on your Slack app's page."
                    ]
                ) from None
            if settings.slack_app_token is not None:
                await _check_app_token(lookup, settings.slack_app_token)
            lease = bus = None
            if store.engine.dialect.name == "postgresql":
                replica_id = settings.replica_id or default_replica_id()
                # Its own engine, never the store's pool: under load every pooled connection can
                # be busy, and a renewal that waits behind them loses the lease.
                lease_engine = build_engine(parse_url(settings.database_url), echo=False)
                lease = Lease(lease_engine, replica_id, duration=settings.leader_lease_seconds)
                held = lease

                def epoch() -> int | None:
                    # The term's epoch even once unsure of it: followers that saw a newer one
                    # drop what a deposed leader sends before it notices.
                    return held.term.epoch if held.term is not None else None

                bus = ReplicaBus(settings.database_url, replica_id=replica_id, epoch=epoch)
            return cls(
                wire(
                    settings,
                    store=store,
                    identity=identity,
                    http=http,
                    consumers=consumers,
                    lease=lease,
                    bus=bus,
                )
            )
        except BaseException:
            await http.close()
            await store.close()
            raise

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start in the order that loses nothing: state first, then the feeds, then the doors.

        The port is taken first, so a busy one fails before anything logs in, and the probes
        answer while the rest starts (every other path says 503 until then). Alone (SQLite) the
        bot leads at once; among replicas it serves as a follower from the start and competes
        for the lease in the background."""
        s = self._services
        health = self._health
        await self._serve()
        if s.lease is None or s.bus is None or s.following is None:
            await self._lead()
        else:
            health.phase = "reading Slack's directory and the stored state"
            s.bus.subscribe(LEADER_TOPIC, self._from_replica)
            s.supervisor.start("replica-bus", s.bus.run, stop=s.bus.stop)
            await s.people.refresh()
            await s.sharing.load()
            await self._adopt_listing()
            following = s.following
            await following.presence.rebuild()
            tasks = s.follower_tasks
            tasks.start("follower-presence", following.presence.run)
            tasks.start("follower-events", following.events.run)
            tasks.start("follower-upkeep", self._follower_upkeep)
            s.supervisor.start("leader-election", self._compete)
        health.phase = "connecting to Slack"
        await self._connect_socket()
        health.phase = "started"
        health.started = True
        log.info("rcstatus is running for workspace %s", self.team_id)

    async def _from_replica(self, message: Any, _envelope: Envelope) -> None:
        if isinstance(message, dict):
            await self._services.inbox.receive(message)

    async def _lead(self) -> None:
        """Everything the leader alone does, started in the order that loses nothing."""
        s = self._services
        health = self._health
        tasks = s.leader_tasks
        health.phase = "logging in to RingCentral and reading its directory"
        await s.presence.prepare()
        health.phase = "reading Slack's directory and the stored state"
        await s.people.refresh()
        # Everything a presence event needs is in memory before the first one is told.
        connected = await s.tokens.load()
        log.info("%d people have connected their Slack status", connected)
        # Claims first, so that the links told next meet what a previous run had written.
        await s.writer.load()
        await s.sharing.load()
        await self._refresh_links()
        tasks.start("status-writer", s.writer.run)
        tasks.start("free-notifier", s.notifier.run)
        tasks.start("dm-outbox", s.outbox.run, stop=s.outbox.stop)
        tasks.start("home-boards", s.boards.run)
        tasks.start("api-event-writer", s.feed.run_writer)
        tasks.start("api-event-pruner", s.feed.run_pruner)
        tasks.start("webhooks", s.webhooks.run, stop=s.webhooks.stop)
        tasks.start("status-upkeep", self._upkeep)
        tasks.start("notification-snooze", s.snooze.run)
        s.presence.start_tasks(tasks)

    async def _compete(self) -> None:
        """Wait for the lease, lead while it is held, and step down the moment it is not.

        A replica that stepped down is rebuilt from scratch as a follower (`deposed`): what the
        leader's parts held in memory belongs to a term that is over."""
        s = self._services
        lease = s.lease
        assert lease is not None
        term = await lease.acquire()
        log.info("leading as epoch %d (replica %s)", term.epoch, lease.replica_id)
        why = "stopping"
        with fenced(term, lease):
            keeper = asyncio.create_task(lease.keep(), name="leader-lease")
            # What kept the follower's view stops first: from now on the roster is the hub's.
            await s.follower_tasks.stop(grace=1.0)
            # The roster's links came from the store as a follower; told afresh, every person
            # reaches the leader's consumers as on a first start.
            s.presence.roster.set_links({}, at=datetime.now(UTC))
            taking_over = asyncio.create_task(self._lead(), name="taking-over")
            try:
                await asyncio.wait({keeper, taking_over}, return_when=asyncio.FIRST_COMPLETED)
                if taking_over.done() and taking_over.exception() is not None:
                    error = taking_over.exception()
                    why = f"taking over failed: {type(error).__name__}: {error}"
                    if not isinstance(error, LeadershipLost):
                        log.error("could not take over as leader: %s", error)
                else:
                    log.info("leader of epoch %d is running", term.epoch)
                    why = await keeper
            finally:
                for task in (keeper, taking_over):
                    task.cancel()
                await asyncio.gather(keeper, taking_over, return_exceptions=True)
                await s.leader_tasks.stop(grace=1.0)
                if lease.term is not None:
                    await lease.release()
                log.warning("stepped down from epoch %d: %s", term.epoch, why)
                self.deposed.set()

    async def _adopt_listing(self) -> None:
        """The extension listing the leader stored: numbers and emails resolve on a follower."""
        s = self._services
        extensions = await s.store.stored_extensions()
        await s.presence.directory.adopt(extensions)

    async def _follower_upkeep(self) -> None:
        """Slack's directory and the stored extension listing, re-read now and then; through a
        database outage the follower answers from what it last read."""
        s = self._services
        interval = s.settings.rate_window_seconds
        people_every = max(1, int(s.settings.directory_refresh_seconds / interval))
        tick = 0
        while True:
            await asyncio.sleep(interval)
            tick += 1
            try:
                await self._adopt_listing()
            except StoreError as exc:
                log.warning("kept the extension listing it had: %s", exc)
            if tick % people_every == 0:
                await s.people.refresh()

    async def wait_for_database(self, stop: asyncio.Event) -> None:
        """Return once the database answers (or `stop` is set): a replica is rebuilt only then,
        and serves what it knows meanwhile."""
        while not stop.is_set() and await self._services.store.health() is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), DATABASE_RETRY)

    async def stop(self) -> None:
        """Everything stopped and awaited within a few seconds (SIGTERM)."""
        s = self._services
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
        if leads(s.lease):
            with contextlib.suppress(TimeoutError):
                # Changes already taken in are recorded, so webhooks and the stream lose none.
                await asyncio.wait_for(s.feed.flush(), timeout=2.0)
            with contextlib.suppress(TimeoutError):
                # Nobody is left Busy in RingCentral for a huddle this process can no longer end.
                await asyncio.wait_for(s.huddles.release_all(), timeout=2.0)
            with contextlib.suppress(TimeoutError):
                # The same for snoozes; any left end by themselves within the hour they were set.
                await asyncio.wait_for(s.snooze.release_all(), timeout=2.0)
        await s.leader_tasks.stop(grace=3.0)
        await s.follower_tasks.stop(grace=1.0)
        if s.lease is not None:
            # Given back rather than left to expire: a follower leads within a second or two.
            await s.lease.release()
            await s.lease.close()
        await s.supervisor.stop(grace=3.0)
        if self._runner is not None:
            await self._runner.cleanup()
        await s.http.close()
        await s.store.close()

    async def _refresh_links(self) -> None:
        s = self._services
        directory = s.presence.directory

        def extension_for(email: str) -> str | None:
            extension = directory.by_email(email)
            return extension.id if extension is not None else None

        await link_by_email(s.store, self.team_id, s.people, extension_for)
        await s.presence.coordinator.reload_links()

    async def _upkeep(self) -> None:
        """Claims Slack already expired, and the people mapping as both directories change."""
        s = self._services
        interval = s.settings.rate_window_seconds
        mapping_every = max(1, int(s.settings.directory_refresh_seconds / interval))
        tick = 0
        while True:
            await asyncio.sleep(interval)
            await s.writer.sweep()
            await s.store.purge_expired_oauth_states()
            tick += 1
            if tick % mapping_every == 0:
                await s.people.refresh()
                await self._refresh_links()

    async def _serve(self) -> None:
        s = self._services
        application = s.slack.web_application(
            routes=[*self._health.routes(), s.metrics.route(s.guard)],
            middlewares=[s.metrics.counting(), self._health.gate()],
        )
        application.add_subapp(API_PREFIX, s.api.application())
        self._runner = web.AppRunner(application, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host=s.settings.host, port=s.settings.port)
        try:
            await site.start()
        except OSError as exc:
            # Taken since run's first check: still one line, never a traceback.
            raise BotError(port_problem(s.settings.host, s.settings.port, exc)) from None
        addresses = self._runner.addresses
        self.http_port = int(addresses[0][1]) if addresses else s.settings.port

    async def _connect_socket(self) -> None:
        s = self._services
        if s.settings.socket_mode:
            app_token = _reveal(s.settings.slack_app_token)
            self._socket = AsyncSocketModeHandler(s.slack.app, app_token)
            await self._socket.connect_async()  # type: ignore[no-untyped-call]

    def role(self) -> dict[str, Any]:
        """Which part this replica plays, for both probes and `doctor`."""
        lease = self._services.lease
        if lease is None:
            return {"role": "leader", "epoch": None, "leader_since": None, "replica_id": None}
        term = lease.term
        leading = term is not None and lease.valid()
        return {
            "role": "leader" if leading else "follower",
            "epoch": term.epoch if term is not None else None,
            "leader_since": term.since.isoformat() if leading and term is not None else None,
            "replica_id": lease.replica_id,
        }

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Readiness (/readyz): started, connected to both platforms, the database answering;
        when not, `reason` says what is missing."""
        s = self._services
        subscriber = s.presence.subscriber.health
        ringcentral_ok = subscriber.state is LinkState.CONNECTED
        slack_ok = self._health.started or not s.settings.socket_mode
        if self._socket is not None:
            slack_ok = bool(await self._socket.client.is_connected())
        tasks = {
            name: h.running
            for supervisor in (s.supervisor, s.leader_tasks)
            for name, h in supervisor.health().items()
        }
        role = self.role()
        leading = role["role"] == "leader"
        store_problem = await s.store.health()
        store: dict[str, Any] = {"ok": store_problem is None}
        if store_problem is not None:
            store["reason"] = store_problem
        reasons = []
        if not self._health.started:
            reasons.append(f"starting: {self._health.phase}")
        else:
            if leading and not ringcentral_ok:
                reasons.append(f"RingCentral's WebSocket is {subscriber.state.value}")
            if not slack_ok:
                reasons.append("Slack's Socket Mode connection is down")
        if store_problem is not None:
            reasons.append(f"the database: {store_problem}")
        ready = not reasons
        return ready, {
            "ready": ready,
            **({} if ready else {"reason": "; ".join(reasons)}),
            **role,
            "ringcentral": subscriber.as_dict(),
            "slack": {"socket_mode": self._socket is not None, "connected": slack_ok},
            "store": store,
            "tasks": tasks,
            "pending_writes": s.writer.pending,
            "presence_intake": s.presence.intake.health(),
            **({"replica_bus": _bus_health(s.bus)} if s.bus is not None else {}),
        }

    # ----------------------------------------------------------------------------- surface

    @property
    def team_id(self) -> str:
        return self._services.identity.team_id

    @property
    def settings(self) -> Settings:
        return self._services.settings

    @property
    def store(self) -> Store:
        return self._services.store

    @property
    def identity(self) -> BotIdentity:
        return self._services.identity

    @property
    def ready(self) -> bool:
        """The first presence snapshot has been merged: everyone's availability is known."""
        return self._services.presence.coordinator.first_snapshot.is_set()

    async def wait_ready(self) -> None:
        await self._services.presence.coordinator.first_snapshot.wait()

    def availability(self, user_id: str) -> Availability | None:
        """A person's availability as the bot knows it now; None if unlinked or never reported."""
        return availability_of(self._services.presence.roster, user_id)

    def presence(self, extension_id: str) -> Presence | None:
        """Any extension's last known presence, linked to someone or not."""
        return self._services.presence.roster.presence(extension_id)

    def status_reason(self, user_id: str) -> str | None:
        """Why nothing is written for this person, if something stops it (as App Home says)."""
        return self._services.writer.explain(user_id)

    def pending_writes(self) -> int:
        return self._services.writer.pending

    def intake_lags(self) -> list[float]:
        """The last few thousand presence events' intake lags (seconds, oldest first): from the
        frame read off the socket to every consumer told, the status writer's decision included."""
        return self._services.presence.intake.recent_lags()

    async def settle(self) -> None:
        """Wait until no change is being told to the consumers, no status write is queued and
        every change for other systems is recorded."""
        s = self._services
        while True:
            await s.presence.intake.wait_idle()
            await s.presence.coordinator.wait_idle()
            await s.writer.drain()
            await s.feed.flush()
            if s.presence.coordinator.idle and s.presence.intake.idle:
                return

    async def set_preferences(self, user_id: str, **changes: Unpack[PreferenceChanges]) -> None:
        """Save a person's choices and act on them, as `/rcstatus settings` does."""
        await self.store.update_preferences(self.team_id, user_id, **changes)
        await self._services.writer.preferences_changed(user_id)

    async def person_connected(self, user_id: str) -> None:
        """A person's token was stored by other means than the OAuth page (bulk set-up)."""
        await self._services.writer.connected(user_id)

    def _reading(self) -> Reading:
        """Every figure /metrics reports, read from the parts' own counters at this moment."""
        s = self._services
        writer, scheduler = s.writer.stats, s.scheduler.stats
        rc = s.presence.client.stats
        link = s.presence.subscriber.health
        rc_groups: dict[str, int] = {}
        for key, count in rc.requests.items():
            method, _, path = key.partition(" ")
            group = rate_group(method, path)
            rc_groups[group] = rc_groups.get(group, 0) + count
        used, limit = s.scheduler.budget_in_use()
        webhooks = s.webhooks.stats()
        return Reading(
            presence_events=s.presence.feed.stats.notifications,
            malformed_events=s.presence.feed.stats.malformed,
            transitions=s.presence.coordinator.stats.transitions,
            status_writes={
                "ok": writer.writes_ok,
                "rate_limited": scheduler.rate_limited,
                "retried": scheduler.retries,
                "gave_up": scheduler.gave_up,
                "gone": scheduler.gone,
                "skipped": scheduler.skipped,
            },
            status_write_attempts=scheduler.writes,
            rate_limited={"slack": scheduler.rate_limited, "ringcentral": rc.rate_limited},
            write_queue=s.writer.pending,
            budget_used=used,
            budget_limit=limit,
            dms={
                "sent": s.outbox.stats.sent,
                "retried": s.outbox.stats.retried,
                "dropped": s.outbox.stats.dropped,
            },
            watches_fired=s.outbox.stats.watches_fired,
            commands=dict(s.metrics.commands.counts),
            ws_connections=link.connections,
            ws_recoveries=link.recoveries,
            ws_failed_recoveries=link.failed_recoveries,
            rc_logins=rc.logins,
            rc_sessions_resumed=rc.resumed,
            rc_token_refreshes=rc.refreshes,
            rc_requests=rc_groups,
            streams_open=s.stream.open,
            gate_waiting=s.gate.waiting,
            webhooks={
                "delivered": webhooks.delivered,
                "failed_attempt": webhooks.failed_attempts,
                "gave_up": webhooks.gave_up,
                "disabled": webhooks.disabled,
            },
            extensions_known=s.presence.roster.extensions_known,
            people_linked=s.presence.roster.people_linked,
            intake_backlog=s.presence.intake.backlog,
            intake_folded=s.presence.intake.stats.folded,
            ready=self._health.started and link.state is LinkState.CONNECTED,
            leading=leads(s.lease),
            epoch=s.lease.term.epoch if s.lease is not None and s.lease.term is not None else 0,
        )

    def stats(self) -> BotStats:
        s = self._services
        return BotStats(
            writer=dataclasses.replace(s.writer.stats),
            scheduler=s.writer.scheduler_stats(),
            coordinator=dataclasses.replace(s.presence.coordinator.stats),
            intake=dataclasses.replace(s.presence.intake.stats),
            feed=dataclasses.replace(s.presence.feed.stats),
            free_dms_sent=s.outbox.stats.watches_fired,
            webhooks=s.webhooks.stats(),
            gate_waiting=s.gate.waiting,
            streams_open=s.stream.open,
            extensions_known=s.presence.roster.extensions_known,
            people_linked=s.presence.roster.people_linked,
            snooze=dataclasses.replace(s.snooze.stats),
            huddles=dataclasses.replace(s.huddles.stats),
            snoozes_pending=s.snooze.pending(),
        )


async def _check_app_token(client: AsyncWebClient, app_token: Secret) -> None:
    """Socket Mode's token, tried once: refused, Bolt would retry it forever, a traceback each
    time, where the operator needs one line. The URL it issues is left to expire unused."""
    try:
        await client.apps_connections_open(app_token=app_token.reveal())
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error not in ("invalid_auth", "not_authed", "token_revoked", "missing_scope"):
            raise ConfigError(
                [
                    f"SLACK_APP_TOKEN was refused by Slack ({error}): Socket Mode may be off; "
                    "turn it on under Settings → Socket Mode on your Slack app's page, or leave "
                    "SLACK_APP_TOKEN empty for HTTP mode."
                ]
            ) from None
        raise ConfigError(
            [
                f"SLACK_APP_TOKEN was refused by Slack ({error}); create an App-Level Token with "
                "the connections:write scope under Basic Information → App-Level Tokens on your "
                "Slack app's page, or leave SLACK_APP_TOKEN empty for HTTP mode."
            ]
        ) from None


def leads(lease: Lease | None) -> bool:
    """Whether this process leads now: alone (no lease, SQLite) it always does."""
    return lease is None or lease.valid()


def _bus_health(bus: ReplicaBus) -> dict[str, Any]:
    return {
        "connected": bus.connected,
        "stale_seconds": round(bus.stale_for(), 1),
        "queued": bus.queued,
    }


def _reveal(secret: Secret | None) -> str | None:
    return secret.reveal() if secret is not None else None


async def run_bot(settings: Settings, stop: asyncio.Event) -> None:
    """`rcstatus-bot run`: start, serve until `stop` is set (SIGTERM/SIGINT), stop cleanly.

    A replica that stops leading is stopped and started again as a follower, in the same process.
    """
    problems = settings.missing_for_run()
    if problems:
        raise ConfigError(problems)  # settings first: fixing them never needs the port
    ensure_port_free(settings.host, settings.port)
    with single_process_lock(settings.database_url):
        while not stop.is_set():
            bot = await Bot.create(settings)
            try:
                try:
                    await bot.start()
                except RingCentralAuthError as exc:
                    what, fix = login_advice(exc, settings.rc_server_url)
                    raise ConfigError([f"{what}; {fix}."]) from None
                except RingCentralUnavailable as exc:
                    # Not a configuration error: the network may come back, so a supervisor
                    # retries.
                    what, fix = login_advice(exc, settings.rc_server_url)
                    raise BotError(f"{what}; {fix}") from None
                await _first(stop.wait(), bot.deposed.wait())
                await bot.wait_for_database(stop)
                log.info("stopping" if stop.is_set() else "starting again as a follower")
            finally:
                await bot.stop()


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
