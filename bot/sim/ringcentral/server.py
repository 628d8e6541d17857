"""A RingCentral stand-in (REST, WebSocket gateway, control API) on one port, for tests/demos."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final, Literal

from aiohttp import web

from bot.sim.company import Company
from bot.sim.limits import TimeScale
from bot.sim.ringcentral.auth import APP_PERMISSIONS, AuthService, Credentials
from bot.sim.ringcentral.control import ControlApi
from bot.sim.ringcentral.directory import Directory, Extension
from bot.sim.ringcentral.gateway import Gateway, GatewaySettings
from bot.sim.ringcentral.rest import RestApi
from bot.sim.ringcentral.subscriptions import SUBSCRIPTION_EXPIRES_IN
from bot.sim.ringcentral.switches import PresenceBodies, Switches
from bot.sim.ringcentral.wire import FaultBook, RateLimiter, Stats, reported_seconds

WS_PATH: Final = "/ws"
DEFAULT_TIME_SCALE: Final = TimeScale()
# Server pings are a courtesy to keep NATs open; they never count as activity, so how often they
# go out only matters for traffic, and below half a second they would just be noise.
_PING_INTERVAL_SIMULATED: Final = 30.0
_MIN_PING_INTERVAL: Final = 0.5


class RingCentralSimulator:
    """One simulated RingCentral account that unmodified clients reach by changing the base URL."""

    def __init__(
        self,
        company: Company,
        *,
        time_scale: TimeScale = DEFAULT_TIME_SCALE,
        host: str = "127.0.0.1",
        port: int = 0,
        access_token_ttl: float = 3600,
        refresh_token_ttl: float = 604800,
        ws_token_ttl: float = 30,
        ws_token_single_use: bool = True,
        presence_bodies: PresenceBodies = "full",
        replay_delay: float = 0,
        idle_timeout: float = 1800,
        absolute_timeout: float = 86400,
        recovery_timeout: float = 180,
        recovery_buffer_size: int = 100,
        rate_limits: Mapping[str, int] | None = None,
        penalty: float = 60,
        clock: Callable[[], float] = time.monotonic,
        event_log_size: int = 10_000,
        app_permissions: Collection[str] = APP_PERMISSIONS,
    ) -> None:
        self._host = host
        self._port = port
        self.time_scale = time_scale
        self._directory = Directory(company, event_log_size=event_log_size)
        credentials = Credentials.for_seed(
            company.seed, owner_id=self._directory.owner_id, account_id=company.account_id
        )
        self.client_id = credentials.client_id
        self.client_secret = credentials.client_secret
        self.jwt = credentials.jwt
        self._switches = Switches(
            presence_bodies=presence_bodies,
            ws_token_ttl=ws_token_ttl,
            ws_token_single_use=ws_token_single_use,
            replay_delay=replay_delay,
        )
        self._stats = Stats()
        self._faults = FaultBook()
        self._limiter = RateLimiter(
            rate_limits, time_scale=time_scale, penalty=penalty, clock=clock
        )
        self._auth = AuthService(
            credentials=credentials,
            owner_id=self._directory.owner_id,
            clock=clock,
            time_scale=time_scale,
            access_token_ttl=access_token_ttl,
            refresh_token_ttl=refresh_token_ttl,
            switches=self._switches,
            on_session_end=self._on_session_end,
            permissions=frozenset(app_permissions),
        )
        self._gateway = Gateway(
            directory=self._directory,
            auth=self._auth,
            limiter=self._limiter,
            faults=self._faults,
            stats=self._stats,
            settings=GatewaySettings(
                idle_timeout=time_scale.seconds(idle_timeout),
                absolute_timeout=time_scale.seconds(absolute_timeout),
                recovery_timeout=time_scale.seconds(recovery_timeout),
                recovery_buffer_size=recovery_buffer_size,
                ping_interval=max(_MIN_PING_INTERVAL, time_scale.seconds(_PING_INTERVAL_SIMULATED)),
                reported_idle_timeout=reported_seconds(time_scale, idle_timeout),
                reported_absolute_timeout=reported_seconds(time_scale, absolute_timeout),
                reported_recovery_timeout=reported_seconds(time_scale, recovery_timeout),
                reported_subscription_expires_in=reported_seconds(
                    time_scale, SUBSCRIPTION_EXPIRES_IN
                ),
            ),
            switches=self._switches,
            time_scale=time_scale,
            clock=clock,
        )
        self._rest = RestApi(
            directory=self._directory,
            auth=self._auth,
            limiter=self._limiter,
            faults=self._faults,
            stats=self._stats,
            ws_path=WS_PATH,
            # Set through the API, a change reaches subscribers like any other presence change.
            publish=lambda change: self._gateway.publish_presence(change),
        )
        self._control = ControlApi(self)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and serve; `url` is valid afterwards."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        app = web.Application(middlewares=[self._rest.middleware])
        app.add_routes(self._control.routes())
        app.add_routes([web.get(WS_PATH, self._gateway.handle)])
        app.add_routes(self._rest.routes())
        app.add_routes([self._rest.fallback_route()])
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1]
        shown_host = "127.0.0.1" if self._host in ("0.0.0.0", "", "::") else self._host
        if ":" in shown_host:
            shown_host = f"[{shown_host}]"
        self._url = f"http://{shown_host}:{port}"

    async def stop(self) -> None:
        """Close every socket and wait for every task this simulator started."""
        if self._runner is None:
            return
        await self._gateway.shutdown()
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> RingCentralSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("simulator not started")
        return self._url

    @property
    def account_id(self) -> int:
        return self._directory.account_id

    @property
    def owner_extension_id(self) -> int:
        """The extension the JWT belongs to (`~` in paths, `owner_id` in tokens)."""
        return self._directory.owner_id

    # ---- driving presence and the directory ----------------------------------------------------

    def set_presence(self, extension_id: int, **fields: Any) -> int | None:
        """Change any presence fields; returns the new sequence, or None if nothing changed."""
        change = self._directory.set_presence(extension_id, fields)
        if change is None:
            return None
        self._gateway.publish_presence(change)
        return change.sequence

    def call(
        self,
        extension_id: int,
        state: str,
        *,
        call_id: str | None = None,
        direction: Literal["Inbound", "Outbound"] = "Inbound",
        peer_number: str | None = None,
        peer_name: str | None = None,
    ) -> str:
        """Move a call to ringing/connected/hold/ended (a new call unless `call_id`); its id."""
        change, the_call_id = self._directory.call(
            extension_id,
            state,
            call_id=call_id,
            direction=direction,
            peer_number=peer_number,
            peer_name=peer_name,
        )
        if change is not None:
            self._gateway.publish_presence(change)
        return the_call_id

    def add_extension(
        self,
        *,
        first_name: str,
        last_name: str,
        email: str,
        extension_number: str | None = None,
        status: str = "Enabled",
    ) -> int:
        event = self._directory.add_user(
            first_name=first_name,
            last_name=last_name,
            email=email,
            extension_number=extension_number,
            status=status,
        )
        self._gateway.publish_extension_event(event)
        return event.extension_id

    def disable_extension(self, extension_id: int) -> None:
        event = self._directory.set_status(extension_id, "Disabled")
        if event is not None:
            self._gateway.publish_extension_event(event)

    def enable_extension(self, extension_id: int) -> None:
        event = self._directory.set_status(extension_id, "Enabled")
        if event is not None:
            self._gateway.publish_extension_event(event)

    def delete_extension(self, extension_id: int) -> None:
        self._gateway.publish_extension_event(self._directory.delete(extension_id))

    # ---- switches ------------------------------------------------------------------------------

    def switches(self) -> dict[str, Any]:
        """Where RingCentral's guide and practice disagree, which behaviour is on (see Switches)."""
        return self._switches.as_dict()

    def set_switches(self, **changes: Any) -> dict[str, Any]:
        """Change any switches at once (all or none); they apply from the next event or token.

        Raises:
            SwitchError: an unknown switch or a value it does not take.
        """
        self._switches.update(changes)
        return self.switches()

    # ---- faults, tokens, sockets ---------------------------------------------------------------

    def issued_secrets(self) -> set[str]:
        """The app's credentials and every token issued so far (for log-leak tests)."""
        return {self.client_secret, self.jwt, *self._auth.issued}

    def send_raw_frame(self, frame: str) -> int:
        """Send one frame, exactly as given (malformed on purpose), to every gateway socket."""
        return self._gateway.send_raw(frame)

    async def drop_sockets(self, error: str | None = None) -> int:
        """Drop every gateway socket, sending that Error first if given; returns once all are gone.

        Without an error the TCP connection is cut as a network failure would; either way the
        WebSocket sessions stay recoverable for `recovery_timeout`.
        """
        return await self._gateway.drop_all(error)

    def expire_tokens(self) -> int:
        """Every access token expires now; refresh tokens stay valid."""
        return self._auth.expire_access_tokens()

    def revoke_sessions(self) -> int:
        """Every OAuth session ends, with all its tokens, sockets and subscriptions."""
        return self._auth.revoke_all()

    def add_fault(
        self,
        path: str,
        status: int,
        *,
        count: int = 1,
        retry_after: float | None = None,
        method: str | None = None,
    ) -> int:
        """The next `count` requests whose path matches (exactly, by template, or glob) fail."""
        return self._faults.add(path, status, count, retry_after, method).fault_id

    def faults(self) -> list[dict[str, Any]]:
        return self._faults.pending()

    def clear_faults(self) -> int:
        return self._faults.clear()

    def _on_session_end(self, session_id: str) -> None:
        self._gateway.end_oauth_session(session_id)

    # ---- inspection ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return self._stats.snapshot(
            sockets=self._gateway.socket_count,
            ws_sessions=self._gateway.session_count,
            subscriptions=self._gateway.subscription_count,
        )

    def reset_stats(self) -> None:
        self._stats.reset()

    def events(
        self, *, after: int = 0, extension_id: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Recent presence changes with the wall-clock `time` they happened."""
        return self._directory.events.read(after=after, extension_id=extension_id, limit=limit)

    def extensions(self) -> list[dict[str, Any]]:
        return [self._describe(self._directory.require(i)) for i in self._directory.all_ids()]

    def extension(self, extension_id: int) -> dict[str, Any]:
        return self._describe(self._directory.require(extension_id))

    def presence(self, extension_id: int) -> dict[str, Any]:
        """The current presence fields of one extension, calls included."""
        described = self.extension(extension_id)
        presence: dict[str, Any] = described["presence"]
        return presence

    def _describe(self, extension: Extension) -> dict[str, Any]:
        presence = self._directory.render_presence(extension, True)
        del presence["uri"], presence["extension"]
        return {
            "id": extension.extension_id,
            "extensionNumber": extension.number,
            "name": extension.name,
            "email": extension.email,
            "type": extension.type,
            "status": extension.status,
            "presence": presence,
        }
