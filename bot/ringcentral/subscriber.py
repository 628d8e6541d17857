"""RingCentral's WebSocket gateway: one account-wide subscription, kept alive and recovered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Protocol
from urllib.parse import quote

import websockets
from websockets.asyncio.client import ClientConnection

from bot.errors import BotError
from bot.logs import quiet_logger
from bot.ringcentral.client import RingCentralError, RingCentralPermissionError, WsToken

log = logging.getLogger(__name__)

ACCOUNT_PRESENCE_FILTER: Final = "/restapi/v1.0/account/~/presence"
EXTENSION_LIST_FILTER: Final = "/restapi/v1.0/account/~/extension"
SUBSCRIPTION_PATH: Final = "/restapi/v1.0/subscription"


def detailed_presence_filter(extension_id: str) -> str:
    return f"/restapi/v1.0/account/~/extension/{extension_id}/presence?detailedTelephonyState=true"


class SessionStart(StrEnum):
    """How a connection began, which decides whether presence must be re-read over REST."""

    NEW = "new"  # no recovery attempted: a fresh session, state unknown
    RECOVERED = "recovered"  # the gateway replayed what we missed: nothing to repair
    RECOVERY_FAILED = "recovery_failed"  # context lost: re-subscribed, state must be re-read


class LinkState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECOVERING = "recovering"
    DOWN = "down"
    STOPPED = "stopped"


@dataclass(slots=True)
class SubscriberHealth:
    state: LinkState = LinkState.CONNECTING
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_event_at: datetime | None = None
    last_error: str | None = None
    connections: int = 0
    recoveries: int = 0
    failed_recoveries: int = 0
    skipped_frames: int = 0
    heartbeats_sent: int = 0
    last_recovery_error: str | None = None
    kept_tokens_offered: int = 0
    kept_tokens_refused: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "since": self.since.isoformat(),
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
            "last_error": self.last_error,
            "connections": self.connections,
            "recoveries": self.recoveries,
            "failed_recoveries": self.failed_recoveries,
            "skipped_frames": self.skipped_frames,
            "heartbeats_sent": self.heartbeats_sent,
            "last_recovery_error": self.last_recovery_error,
            "kept_tokens_offered": self.kept_tokens_offered,
            "kept_tokens_refused": self.kept_tokens_refused,
        }


class TokenSource(Protocol):
    """WebSocket tokens: a new one (Auth group, 5 a minute), or the last one while it may last."""

    async def ws_token(self) -> WsToken: ...
    async def kept_ws_token(self) -> WsToken | None: ...
    def forget_ws_token(self, token: WsToken) -> None: ...


class NotificationSink(Protocol):
    """Where the subscriber delivers what the gateway says (the sync coordinator)."""

    async def on_notification(self, envelope: dict[str, Any]) -> None: ...
    async def on_session_start(self, start: SessionStart) -> None: ...


class GatewayError(BotError):
    """The gateway refused us or broke the protocol; the connection is retried."""


class TokenRefused(GatewayError):
    """The gateway turned the connection down before ConnectionDetails: an HTTP error on the
    upgrade, or an Error frame first (the simulator's answer to a used token)."""


@dataclass(frozen=True, slots=True)
class _Wsc:
    token: str
    sequence: int


class Subscriber:
    """Holds one subscription on RingCentral's WebSocket gateway for as long as `run()` runs."""

    def __init__(
        self,
        tokens: TokenSource,
        sink: NotificationSink,
        *,
        detailed_extensions: Sequence[str] = (),
        heartbeat_interval: float = 300.0,
        handshake_timeout: float = 15.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._tokens = tokens
        self._sink = sink
        self._filters = [ACCOUNT_PRESENCE_FILTER, EXTENSION_LIST_FILTER] + [
            detailed_presence_filter(e) for e in detailed_extensions
        ]
        self._heartbeat_interval = heartbeat_interval
        self._handshake_timeout = handshake_timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._clock = clock
        self._sleep = sleep
        self._stopping = asyncio.Event()
        self._socket: ClientConnection | None = None
        self._handshaken = False
        self._wsc: _Wsc | None = None
        self._dropped_at: float | None = None
        self._recovery_timeout = 180.0
        self._idle_timeout = 1800.0
        self._pending: dict[str, asyncio.Future[tuple[dict[str, Any], Any]]] = {}
        self._reported_frame_kinds: set[str] = set()
        self._ws_logger = quiet_logger("websockets.rcstatus.ringcentral")
        self.subscription_id: str | None = None
        self.health = SubscriberHealth()

    # ----------------------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Connect, subscribe and deliver until `stop()`; every failure leads to a reconnect."""
        failures = 0
        while not self._stopping.is_set():
            try:
                await self._one_connection()
                failures = 0
            except asyncio.CancelledError:
                raise
            except RingCentralPermissionError as exc:
                self._set_state(LinkState.DOWN, str(exc))
                log.error("RingCentral refused the subscription: %s", exc)
                failures = max(failures, 4)
            except (RingCentralError, GatewayError, OSError, websockets.WebSocketException) as exc:
                failures += 1
                reason = _describe(exc)
                self._set_state(self._state_after_drop(), reason)
                log.warning("RingCentral WebSocket: %s", reason)
            finally:
                self._socket = None
                self._fail_pending()
            if self._stopping.is_set():
                break
            if self._dropped_at is None:
                self._dropped_at = self._clock()
            self._set_state(self._state_after_drop(), self.health.last_error)
            await self._pause(self._backoff(failures))
        self._set_state(LinkState.STOPPED, None)

    async def stop(self) -> None:
        self._stopping.set()
        if self._socket is not None:
            await self._socket.close()

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _backoff(self, failures: int) -> float:
        if failures <= 1:
            # A plain drop (WSG-903, a network blip) is retried at once: recovery has a deadline.
            return random.uniform(0, self._backoff_base * 0.2)
        ceiling = min(self._backoff_cap, self._backoff_base * 2.0 ** (failures - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _state_after_drop(self) -> LinkState:
        return LinkState.RECOVERING if self._can_recover() else LinkState.DOWN

    def _can_recover(self) -> bool:
        if self._wsc is None or self.subscription_id is None:
            return False
        if self._dropped_at is None:
            return True
        # Leave a margin for the token request and the handshake inside the gateway's window.
        return self._clock() - self._dropped_at < self._recovery_timeout * 0.9

    def _set_state(self, state: LinkState, error: str | None) -> None:
        if state != self.health.state:
            self.health.state = state
            self.health.since = datetime.now(UTC)
        self.health.last_error = error

    # ----------------------------------------------------------------------------- a connection

    async def _one_connection(self) -> None:
        recover = self._can_recover()
        if not recover and self._wsc is not None:
            log.info("RingCentral WebSocket: recovery window passed; starting a new session")
            self._wsc = None
            self.subscription_id = None
        kept = await self._tokens.kept_ws_token()
        if kept is not None:
            self.health.kept_tokens_offered += 1
            try:
                await self._connection(kept, recover=recover)
                return
            except TokenRefused as exc:
                # Costs no more than not trying: a new token is what this attempt would have
                # fetched anyway. The guide calls tokens single-use; RingCentral's own library
                # reuses them (reference §5.2), so a refusal here is expected on some gateways.
                self._tokens.forget_ws_token(kept)
                self.health.kept_tokens_refused += 1
                log.info("RingCentral WebSocket: kept token refused (%s); fetching a new one", exc)
            except BaseException:
                if not self._handshaken:
                    # A kept token gets one chance: an attempt that failed is not retried with it.
                    self._tokens.forget_ws_token(kept)
                raise
        await self._connection(await self._tokens.ws_token(), recover=recover)

    async def _connection(self, token: WsToken, *, recover: bool) -> None:
        """One socket, from the upgrade until it closes; TokenRefused if turned down at once."""
        self._handshaken = False
        url = f"{token.uri}?access_token={quote(token.token.reveal(), safe='')}"
        if recover and self._wsc is not None:
            url += f"&wsc={quote(self._wsc.token, safe='')}"
        self._set_state(LinkState.RECOVERING if recover else LinkState.CONNECTING, None)
        try:
            socket = await websockets.connect(
                url,
                logger=self._ws_logger,
                open_timeout=self._handshake_timeout,
                max_size=8 * 1024 * 1024,
            )
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            if 400 <= status < 500:
                raise TokenRefused(f"HTTP {status} on the WebSocket upgrade") from None
            raise
        async with socket:
            self._socket = socket
            start = await self._handshake(socket, recovering=recover)
            self._handshaken = True
            self.health.connections += 1
            self._dropped_at = None
            self._set_state(LinkState.CONNECTED, None)
            receiver = asyncio.create_task(self._receive(socket), name="rc-ws-receive")
            heartbeat = asyncio.create_task(self._heartbeat(socket), name="rc-ws-heartbeat")
            try:
                if start is not SessionStart.RECOVERED:
                    await self._subscribe(socket)
                await self._sink.on_session_start(start)
                await receiver
            finally:
                for task in (receiver, heartbeat):
                    task.cancel()
                await asyncio.gather(receiver, heartbeat, return_exceptions=True)
                if not self._stopping.is_set():
                    self._dropped_at = self._clock()

    async def _handshake(self, socket: ClientConnection, *, recovering: bool) -> SessionStart:
        """The gateway speaks first: ConnectionDetails, or an Error before it closes."""
        try:
            raw = await asyncio.wait_for(socket.recv(), self._handshake_timeout)
        except TimeoutError as exc:
            raise GatewayError("no ConnectionDetails from the gateway") from exc
        meta, body = _split_frame(raw)
        if meta is None:
            raise GatewayError("the gateway's first frame was not a [meta, body] array")
        if meta.get("type") == "Error":
            code = body.get("errorCode") if isinstance(body, dict) else None
            if code == "WSG-400":
                # Our recovery token was refused outright: never offer it again.
                self._wsc = None
                self.subscription_id = None
                raise GatewayError(f"gateway error {code} on connect")
            raise TokenRefused(f"gateway error {code or 'unknown'} on connect")
        if meta.get("type") != "ConnectionDetails" or not isinstance(body, dict):
            raise GatewayError("the gateway's first frame was not ConnectionDetails")
        self._remember_wsc(meta, fresh=True)
        self._recovery_timeout = _number(body.get("recoveryTimeout"), self._recovery_timeout)
        self._idle_timeout = _number(body.get("idleTimeout"), self._idle_timeout)
        state = body.get("recoveryState")
        if recovering and state == "Successful":
            self.health.recoveries += 1
            log.info("RingCentral WebSocket recovered; missed notifications will be replayed")
            return SessionStart.RECOVERED
        if recovering:
            self.health.failed_recoveries += 1
            self.health.last_recovery_error = str(body.get("recoveryErrorCode") or "unknown")
            log.warning(
                "RingCentral WebSocket recovery failed (%s); re-subscribing, re-reading presence",
                body.get("recoveryErrorCode", "no recoveryState"),
            )
            self.subscription_id = None
            return SessionStart.RECOVERY_FAILED
        return SessionStart.NEW

    async def _subscribe(self, socket: ClientConnection) -> None:
        body = {"eventFilters": self._filters, "deliveryMode": {"transportType": "WebSocket"}}
        meta, response = await self._request(socket, "POST", SUBSCRIPTION_PATH, body)
        status = int(meta.get("status") or 0)
        if meta.get("type") == "Error" or status >= 400 or not isinstance(response, dict):
            code = response.get("errorCode") if isinstance(response, dict) else None
            message = f"subscription refused: HTTP {status} {code or ''}".strip()
            if status == 403:
                raise RingCentralPermissionError(message, status=status, error_code=code)
            raise GatewayError(message)
        self.subscription_id = str(response.get("id") or "") or None
        for disabled in response.get("disabledFilters") or []:
            if isinstance(disabled, dict):
                log.warning(
                    "RingCentral did not apply event filter %s: %s",
                    disabled.get("filter"),
                    disabled.get("message") or disabled.get("reason"),
                )
        log.info("RingCentral subscription %s active", self.subscription_id)

    async def _request(
        self, socket: ClientConnection, method: str, path: str, body: Any
    ) -> tuple[dict[str, Any], Any]:
        message_id = str(uuid.uuid4())
        waiter: asyncio.Future[tuple[dict[str, Any], Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[message_id] = waiter
        meta = {"type": "ClientRequest", "messageId": message_id, "method": method, "path": path}
        try:
            await socket.send(json.dumps([meta, body]))
            return await asyncio.wait_for(waiter, self._handshake_timeout)
        except TimeoutError as exc:
            raise GatewayError(f"no answer to {method} {path}") from exc
        finally:
            self._pending.pop(message_id, None)

    def _fail_pending(self) -> None:
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(GatewayError("connection closed"))
        self._pending.clear()

    async def _heartbeat(self, socket: ClientConnection) -> None:
        """Ping frames do not count as traffic for the gateway; only messages keep it open."""
        interval = min(self._heartbeat_interval, self._idle_timeout / 3)
        while True:
            await asyncio.sleep(interval)
            await socket.send(json.dumps([{"type": "Heartbeat", "messageId": str(uuid.uuid4())}]))
            self.health.heartbeats_sent += 1

    async def _receive(self, socket: ClientConnection) -> None:
        async for raw in socket:
            meta, body = _split_frame(raw)
            if meta is None:
                self._skip("malformed", "a frame that is not a [meta, body] array")
                continue
            self._remember_wsc(meta)
            kind = meta.get("type")
            if kind == "ServerNotification":
                if not isinstance(body, dict):
                    self._skip("notification-without-body", "a notification without a body")
                    continue
                self.health.last_event_at = datetime.now(UTC)
                await self._deliver(body)
            elif kind in ("ClientRequest", "Error") and meta.get("messageId") in self._pending:
                waiter = self._pending[str(meta["messageId"])]
                if not waiter.done():
                    waiter.set_result((meta, body))
            elif kind == "Error":
                code = body.get("errorCode") if isinstance(body, dict) else None
                message = body.get("message") if isinstance(body, dict) else None
                log.info("RingCentral gateway says %s: %s", code, message)
                if code in ("WSG-902", "WSG-903"):
                    raise GatewayError(f"gateway closed the session ({code})")
            elif kind in ("Heartbeat", "ConnectionDetails"):
                continue
            else:
                self._skip(f"type:{kind}", f"a frame of unknown type {str(kind)[:40]!r}")

    async def _deliver(self, envelope: dict[str, Any]) -> None:
        try:
            await self._sink.on_notification(envelope)
        except Exception:
            # A bug in one consumer must not stop the stream for everyone else.
            log.exception("presence consumer failed on a notification; continuing")

    def _skip(self, kind: str, description: str) -> None:
        self.health.skipped_frames += 1
        if kind not in self._reported_frame_kinds:
            self._reported_frame_kinds.add(kind)
            log.warning("RingCentral WebSocket: skipped %s (logged once)", description)

    def _remember_wsc(self, meta: dict[str, Any], *, fresh: bool = False) -> None:
        """Keep the session token with the highest sequence; a new connection starts it over."""
        wsc = meta.get("wsc")
        if not isinstance(wsc, dict):
            return
        token, sequence = wsc.get("token"), wsc.get("sequence")
        if not isinstance(token, str) or not isinstance(sequence, int):
            return
        if fresh or self._wsc is None or sequence > self._wsc.sequence:
            self._wsc = _Wsc(token, sequence)


def _split_frame(raw: str | bytes) -> tuple[dict[str, Any] | None, Any]:
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(frame, list) or not frame or not isinstance(frame[0], dict):
        return None, None
    return frame[0], frame[1] if len(frame) > 1 else None


def _number(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else default


def _describe(exc: BaseException) -> str:
    if isinstance(exc, websockets.ConnectionClosed):
        return f"connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
    if isinstance(exc, BotError):
        return str(exc)
    return f"{type(exc).__name__}"
