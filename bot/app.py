"""Composition root: builds every part from Settings and wires them together."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from bot.config import Settings
from bot.errors import ConfigError
from bot.ringcentral.client import RingCentralClient
from bot.ringcentral.directory import Directory
from bot.ringcentral.subscriber import Subscriber
from bot.supervisor import Supervisor
from bot.sync import PresenceCoordinator, PresenceMemory, TransitionConsumer

log = logging.getLogger(__name__)


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
        client_id, secret, jwt = settings.rc_client_id, settings.rc_client_secret, settings.rc_jwt
        if not (client_id and secret and jwt):
            raise ConfigError(
                [p for p in settings.missing_for_run() if p.startswith(("RC_CLIENT", "RC_JWT"))]
            )
        client = RingCentralClient(
            server_url=settings.rc_server_url,
            client_id=client_id,
            client_secret=secret,
            jwt=jwt,
            rate_window=settings.rate_window_seconds,
        )
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
        """Log in and list users first (a bad credential fails here, loudly), then run the tasks.

        The subscription comes before the first snapshot so no change falls between them: the
        subscriber asks for a snapshot as soon as it has subscribed.
        """
        await self.client.login()
        await self.directory.refresh()
        restored = await self.coordinator.restore()
        if restored:
            log.info("restored the last known presence of %d extensions", restored)
        supervisor.start("ringcentral-token", self.client.keep_token_fresh)
        supervisor.start("ringcentral-subscriber", self.subscriber.run, stop=self.subscriber.stop)
        supervisor.start("presence-snapshots", self.coordinator.run_snapshots)
        supervisor.start("ringcentral-directory", self.coordinator.run_directory)
        supervisor.start("presence-persistence", self.coordinator.run_persistence)
