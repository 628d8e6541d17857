"""The simulated RingCentral WebSocket gateway: sessions, subscriptions, notifications, recovery."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import WSCloseCode, WSMsgType, web

from bot.sim.limits import TimeScale
from bot.sim.ringcentral.auth import AuthService, OAuthSession
from bot.sim.ringcentral.directory import Directory, ExtensionEvent, PresenceChange
from bot.sim.ringcentral.subscriptions import (
    SUBSCRIPTION_PATH,
    FilterSet,
    Subscription,
    request_problem,
    resolve_filters,
)
from bot.sim.ringcentral.switches import Switches
from bot.sim.ringcentral.wire import (
    FaultBook,
    RateLimiter,
    Stats,
    dumps,
    error_body,
    http_date,
    insufficient_permissions_body,
    iso_millis,
    iso_offset,
    message_id,
    rate_limited_body,
    request_id,
)

MAX_CONNECTIONS_PER_SESSION: Final = 50
MAX_ACTIVE_REQUESTS: Final = 10
KNOWN_ERRORS: Final[Mapping[str, str]] = {
    "WSG-902": "Idle timeout expired",
    "WSG-903": "Absolute timeout expired",
}
# A full body lists fields as the guide's detailed-presence sample does (reference §4.2), with
# the fields that sample lacks next to their kin; activeCalls goes after the telephony fields.
_FULL_BODY_HEAD: Final = ("telephonyStatus", "aggregatedTelephonyStatus", "cxTelephonyStatus")
_FULL_BODY_TAIL: Final = (
    "presenceStatus",
    "userStatus",
    "meetingStatus",
    "dndStatus",
    "dndStatusPersonal",
    "message",
    "allowSeeMyPresence",
    "acceptCallQueueCalls",
    "ringOnMonitoredCall",
    "pickUpCallsOnHold",
)
_NULL_BODY_MESSAGE: Final = (
    "Expected either '{' opening an object body or '\"' opening a string body "
    "but was another character"
)


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Enforced durations in real seconds, and the integers ConnectionDetails reports."""

    idle_timeout: float
    absolute_timeout: float
    recovery_timeout: float
    recovery_buffer_size: int
    ping_interval: float
    reported_idle_timeout: int
    reported_absolute_timeout: int
    reported_recovery_timeout: int
    reported_subscription_expires_in: int


@dataclass(frozen=True, slots=True)
class _Close:
    frame: str | None
    code: int = WSCloseCode.OK
    abort: bool = False


_PING: Final = object()


class _Connection:
    """One gateway socket; all writes go through its outbox so frames keep their order."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self.session: _WsSession | None = None
        self.outbox: asyncio.Queue[str | _Close | object] = asyncio.Queue()
        self.finished = asyncio.Event()
        self.closing = False
        # A recovery whose replay waits for the `replay_delay` switch.
        self.replay_owed = False

    def send(self, frame: str) -> None:
        if not self.closing:
            self.outbox.put_nowait(frame)

    def ping(self) -> None:
        if not self.closing:
            self.outbox.put_nowait(_PING)

    def close(
        self, frame: str | None = None, *, code: int = WSCloseCode.OK, abort: bool = False
    ) -> None:
        if not self.closing:
            self.closing = True
            self.outbox.put_nowait(_Close(frame, code, abort))

    async def write_loop(self) -> None:
        while True:
            item = await self.outbox.get()
            if isinstance(item, _Close):
                await self._finish(item)
                return
            if self.ws.closed:
                continue
            try:
                if item is _PING:
                    await self.ws.ping()
                elif isinstance(item, str):
                    await self.ws.send_str(item)
            except (ConnectionError, RuntimeError):
                self.closing = True

    async def _finish(self, item: _Close) -> None:
        if item.abort:
            transport = self.request.transport
            if transport is not None:
                transport.abort()
            return
        try:
            if item.frame is not None and not self.ws.closed:
                await self.ws.send_str(item.frame)
            await self.ws.close(code=item.code)
        except (ConnectionError, RuntimeError):
            pass


@dataclass(eq=False, slots=True)
class _WsSession:
    """The gateway's session context that a `wsc` token names and a recovery resumes."""

    key: str
    wsc_token: str
    oauth: OAuthSession
    buffer: deque[str]
    connection: _Connection | None = None
    subscription: Subscription | None = None
    disconnected_at: float | None = None
    wsc_sequence: int = 0

    def next_wsc(self) -> dict[str, Any]:
        self.wsc_sequence += 1
        return {"token": self.wsc_token, "sequence": self.wsc_sequence}


def _error_frame(code: str, message: str, *, status: int, in_reply_to: Any = None) -> str:
    rid = request_id()
    meta = {
        "type": "Error",
        "messageId": in_reply_to if isinstance(in_reply_to, str) else str(uuid.uuid4()),
        "status": status,
        "headers": {"RCRequestId": rid},
    }
    return dumps([meta, {"errorCode": code, "message": message}])


class Gateway:
    """Every socket, WebSocket session and subscription; fan-out is indexed by extension id."""

    def __init__(
        self,
        *,
        directory: Directory,
        auth: AuthService,
        limiter: RateLimiter,
        faults: FaultBook,
        stats: Stats,
        settings: GatewaySettings,
        switches: Switches,
        time_scale: TimeScale,
        clock: Callable[[], float],
    ) -> None:
        self._directory = directory
        self._auth = auth
        self._limiter = limiter
        self._faults = faults
        self._stats = stats
        self._settings = settings
        self._switches = switches
        self._time_scale = time_scale
        self._clock = clock
        self._wsc_secret = secrets.token_bytes(32)
        self._connections: set[_Connection] = set()
        self._sessions: dict[str, _WsSession] = {}
        self._account_subscribers: dict[_WsSession, bool] = {}
        self._extension_subscribers: dict[int, dict[_WsSession, bool]] = {}
        self._list_subscribers: set[_WsSession] = set()

    @property
    def socket_count(self) -> int:
        return len(self._connections)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    @property
    def subscription_count(self) -> int:
        """Subscriptions being delivered now: on a session with a socket open (a dropped
        session's subscription waits for recovery and reaches nobody meanwhile)."""
        return sum(
            1
            for session in self._sessions.values()
            if session.subscription is not None and session.connection is not None
        )

    # ---- the socket's life ---------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, compress=False, timeout=2.0)
        await ws.prepare(request)
        connection = _Connection(ws, request)
        self._connections.add(connection)
        self._stats.sockets_opened += 1
        writer = asyncio.create_task(connection.write_loop())
        replay: asyncio.Task[None] | None = None
        try:
            if self._open(connection, request.query):
                if connection.replay_owed:
                    replay = asyncio.create_task(self._replay_later(connection))
                await self._read_loop(connection)
        finally:
            if replay is not None:
                replay.cancel()
                # gather, not a suppressed await: this handler's own cancellation still counts.
                await asyncio.gather(replay, return_exceptions=True)
            self._detach(connection)
            connection.close()
            await writer
            self._connections.discard(connection)
            connection.finished.set()
        return ws

    def _open(self, connection: _Connection, query: Mapping[str, str]) -> bool:
        oauth = self._auth.consume_ws_token(query.get("access_token"))
        if oauth is None:
            connection.close(
                _error_frame("TokenInvalid", "WebSocket access token is invalid", status=401)
            )
            return False
        self._prune()
        wsc = query.get("wsc")
        recovery: dict[str, str] = {}
        session: _WsSession | None = None
        if wsc is not None:
            key = self._parse_wsc(wsc)
            if key is None:
                connection.close(
                    _error_frame("WSG-400", "Malformed WebSocket session context token", status=400)
                )
                return False
            previous = self._sessions.get(key)
            if previous is None:
                recovery = {"recoveryState": "Failed", "recoveryErrorCode": "WSG-1005"}
            elif previous.oauth.session_id != oauth.session_id:
                recovery = {"recoveryState": "Failed", "recoveryErrorCode": "WSG-1003"}
            elif previous.subscription is None:
                recovery = {"recoveryState": "Failed", "recoveryErrorCode": "WSG-1005"}
                self._forget(previous)
            else:
                session = previous
                recovery = {"recoveryState": "Successful"}
        if session is None:
            session = self._new_session(oauth)
        elif session.connection is not None:
            # The client came back before the server noticed the old socket die: the new one wins.
            stale = session.connection
            stale.session = None
            stale.close()
        session.connection = connection
        session.disconnected_at = None
        connection.session = session
        connection.send(self._connection_details(session, recovery))
        if recovery.get("recoveryState") == "Successful":
            if self._switches.replay_delay > 0:
                connection.replay_owed = True
            else:
                self._replay(session, connection)
        return True

    async def _replay_later(self, connection: _Connection) -> None:
        """The missed notifications, `replay_delay` after ConnectionDetails, if still connected.

        Until then they stay in the session's buffer, so a drop before the replay keeps them
        (behind whatever else is missed) for the next recovery.
        """
        await asyncio.sleep(self._time_scale.seconds(self._switches.replay_delay))
        session = connection.session
        if session is not None and session.connection is connection and not connection.closing:
            self._replay(session, connection)

    def _replay(self, session: _WsSession, connection: _Connection) -> None:
        for frame in session.buffer:
            connection.send(frame)
        self._stats.notifications_replayed += len(session.buffer)
        session.buffer.clear()

    async def _read_loop(self, connection: _Connection) -> None:
        loop = asyncio.get_running_loop()
        opened = loop.time()
        last_activity = opened
        absolute_deadline = opened + self._settings.absolute_timeout
        next_ping = opened + self._settings.ping_interval
        while True:
            idle_deadline = last_activity + self._settings.idle_timeout
            try:
                async with asyncio.timeout_at(min(idle_deadline, absolute_deadline, next_ping)):
                    message = await connection.ws.receive()
            except TimeoutError:
                now = loop.time()
                if now >= absolute_deadline:
                    self._expire(connection, "WSG-903")
                    return
                if now >= idle_deadline:
                    self._expire(connection, "WSG-902")
                    return
                connection.ping()
                next_ping = now + self._settings.ping_interval
                continue
            if message.type is WSMsgType.TEXT:
                # Only what the client's application sends counts as activity; pings and pongs
                # are answered inside aiohttp and never reach this loop.
                last_activity = loop.time()
                self._on_text(connection, message.data)
            elif message.type is WSMsgType.BINARY:
                last_activity = loop.time()
                connection.send(
                    _error_frame("WSG-808", "Binary frames are not supported", status=400)
                )
            else:
                return

    def _expire(self, connection: _Connection, code: str) -> None:
        self._detach(connection)
        connection.close(_error_frame(code, KNOWN_ERRORS[code], status=400))

    def _detach(self, connection: _Connection) -> None:
        session = connection.session
        connection.session = None
        if session is not None and session.connection is connection:
            session.connection = None
            session.disconnected_at = self._clock()

    # ---- sessions ------------------------------------------------------------------------------

    def _new_session(self, oauth: OAuthSession) -> _WsSession:
        key = secrets.token_hex(12)
        signature = hmac.new(self._wsc_secret, key.encode(), hashlib.sha256).hexdigest()[:16]
        token = base64.urlsafe_b64encode(f"{key}|{signature}".encode()).decode().rstrip("=")
        session = _WsSession(
            key=key,
            wsc_token=token,
            oauth=oauth,
            buffer=deque(maxlen=self._settings.recovery_buffer_size),
        )
        self._sessions[key] = session
        return session

    def _parse_wsc(self, token: str) -> str | None:
        """The session key inside a wsc token we issued; None for anything else (malformed)."""
        try:
            padded = token + "=" * (-len(token) % 4)
            decoded = base64.urlsafe_b64decode(padded.encode()).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        key, _, signature = decoded.partition("|")
        expected = hmac.new(self._wsc_secret, key.encode(), hashlib.sha256).hexdigest()[:16]
        return key if hmac.compare_digest(signature, expected) else None

    def _recoverable(self, session: _WsSession) -> bool:
        if session.connection is not None or session.disconnected_at is None:
            return True
        return self._clock() - session.disconnected_at <= self._settings.recovery_timeout

    def _prune(self) -> None:
        for session in [s for s in self._sessions.values() if not self._recoverable(s)]:
            self._forget(session)

    def _forget(self, session: _WsSession) -> None:
        self._unindex(session)
        session.subscription = None
        session.buffer.clear()
        self._sessions.pop(session.key, None)

    def end_oauth_session(self, oauth_session_id: str) -> None:
        """A revoked OAuth session takes its sockets and their subscriptions with it."""
        for session in [
            s for s in self._sessions.values() if s.oauth.session_id == oauth_session_id
        ]:
            if session.connection is not None:
                session.connection.close()
            self._forget(session)

    def _connection_details(self, session: _WsSession, recovery: Mapping[str, str]) -> str:
        rid = str(uuid.uuid4())
        meta = {
            "type": "ConnectionDetails",
            "messageId": rid,
            "status": 200,
            "wsc": session.next_wsc(),
            "headers": {"RCRequestId": rid},
        }
        body: dict[str, Any] = {"creationTime": iso_offset()}
        body.update(recovery)
        body.update(
            {
                "maxConnectionsPerSession": MAX_CONNECTIONS_PER_SESSION,
                "recoveryBufferSize": self._settings.recovery_buffer_size,
                "recoveryTimeout": self._settings.reported_recovery_timeout,
                "idleTimeout": self._settings.reported_idle_timeout,
                "absoluteTimeout": self._settings.reported_absolute_timeout,
                "maxActiveRequests": MAX_ACTIVE_REQUESTS,
            }
        )
        return dumps([meta, body])

    async def drop_all(self, error_code: str | None = None) -> int:
        """Drop every socket (sending `error_code` first if given); sessions stay recoverable."""
        connections = list(self._connections)
        frame = None
        if error_code is not None:
            message = KNOWN_ERRORS.get(error_code, "Connection closed by the server")
            frame = _error_frame(error_code, message, status=400)
        for connection in connections:
            self._detach(connection)
            connection.close(frame, abort=frame is None)
        await asyncio.gather(*(c.finished.wait() for c in connections))
        return len(connections)

    def send_raw(self, frame: str) -> int:
        """Send `frame` verbatim to every socket: how tests show the bot survives garbage."""
        for connection in self._connections:
            connection.send(frame)
        return len(self._connections)

    async def shutdown(self) -> None:
        connections = list(self._connections)
        for connection in connections:
            self._detach(connection)
            connection.close(code=WSCloseCode.GOING_AWAY)
        await asyncio.gather(*(c.finished.wait() for c in connections))

    # ---- messages from the client --------------------------------------------------------------

    def _on_text(self, connection: _Connection, text: str) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            connection.send(_error_frame("WSG-808", "Message is not valid JSON", status=400))
            return
        if not isinstance(frame, list) or not frame or not isinstance(frame[0], dict):
            connection.send(
                _error_frame("WSG-808", "Message must be an array [meta, body]", status=400)
            )
            return
        meta = frame[0]
        kind = meta.get("type")
        if kind == "Heartbeat":
            connection.send(dumps([{"type": "Heartbeat", "messageId": meta.get("messageId")}]))
        elif kind == "ClientRequest":
            self._client_request(connection, meta, frame)
        else:
            connection.send(
                _error_frame(
                    "WSG-808",
                    f"Unsupported message type [{kind}]",
                    status=400,
                    in_reply_to=meta.get("messageId"),
                )
            )

    def _client_request(
        self, connection: _Connection, meta: dict[str, Any], frame: list[Any]
    ) -> None:
        message = meta.get("messageId")
        method = str(meta.get("method", "")).upper()
        path = str(meta.get("path", ""))
        if not isinstance(message, str) or not method or not path:
            connection.send(
                _error_frame(
                    "WSG-808", "ClientRequest needs messageId, method and path", status=400
                )
            )
            return
        if len(frame) > 1 and frame[1] is None:
            connection.send(
                _error_frame("WSG-808", _NULL_BODY_MESSAGE, status=400, in_reply_to=message)
            )
            return
        body = frame[1] if len(frame) > 1 else None
        session = connection.session
        assert session is not None
        self._stats.client_requests += 1
        self._stats.count_request(method, path)
        fault = self._faults.take(method, path)
        if fault is not None:
            self._stats.faults += 1
            connection.send(self._response(message, fault.status, fault.body, fault.headers))
            return
        route = path.split("?", 1)[0].rstrip("/")
        if route != SUBSCRIPTION_PATH and not route.startswith(SUBSCRIPTION_PATH + "/"):
            connection.send(self._response(message, 404, error_body("CMN-120", "Invalid URI"), {}))
            return
        admission = self._limiter.admit("light" if method == "GET" else "medium")
        self._stats.count_admission(admission)
        if not admission.allowed:
            connection.send(self._response(message, 429, rate_limited_body(), admission.headers))
            return
        subscription_id = route[len(SUBSCRIPTION_PATH) + 1 :] or None
        status, reply = self._subscription_request(session, method, subscription_id, body)
        connection.send(self._response(message, status, reply, admission.headers))

    @staticmethod
    def _response(
        message: str, status: int, body: dict[str, Any] | None, extra_headers: Mapping[str, str]
    ) -> str:
        headers = {
            "Server": "nginx",
            "Date": http_date(),
            "Content-Type": "application/json",
            "RoutingKey": "SIM01P01",
            "RCRequestId": request_id(),
            **extra_headers,
        }
        meta = {"type": "ClientRequest", "messageId": message, "status": status, "headers": headers}
        return dumps([meta] if body is None else [meta, body])

    # ---- subscriptions -------------------------------------------------------------------------

    def _subscription_request(
        self, session: _WsSession, method: str, subscription_id: str | None, body: Any
    ) -> tuple[int, dict[str, Any] | None]:
        current = session.subscription
        if subscription_id is None:
            if method == "POST":
                return self._create(session, body)
            if method == "GET":
                records = [current.info()] if current is not None else []
                return 200, {"uri": SUBSCRIPTION_PATH, "records": records}
            return 405, error_body("CMN-202", "Operation is not supported")
        if current is None or current.subscription_id != subscription_id:
            return 404, error_body(
                "CMN-102",
                "Resource for parameter [subscriptionId] is not found",
                parameter="subscriptionId",
            )
        if method == "GET":
            return 200, current.info()
        if method == "DELETE":
            self._unindex(session)
            session.subscription = None
            return 204, None
        if method == "PUT":
            return self._update(session, current, body)
        return 405, error_body("CMN-202", "Operation is not supported")

    def _create(self, session: _WsSession, body: Any) -> tuple[int, dict[str, Any]]:
        problem = request_problem(body, require_delivery=True)
        if problem is not None:
            return 400, problem
        filters = resolve_filters(body["eventFilters"], self._directory)
        if filters.invalid:
            return 400, filters.invalid_error()
        refused = self._permission_problem(filters)
        if refused is not None:
            return 403, refused
        # One subscription per connection: a second POST replaces the first.
        self._unindex(session)
        session.subscription = Subscription(
            subscription_id=str(uuid.uuid4()),
            created=datetime.now(UTC),
            expires_in=self._settings.reported_subscription_expires_in,
            filters=filters,
        )
        self._index(session)
        self._stats.subscriptions_created += 1
        return 200, session.subscription.info()

    def _update(
        self, session: _WsSession, current: Subscription, body: Any
    ) -> tuple[int, dict[str, Any]]:
        problem = request_problem(body, require_delivery=False)
        if problem is not None:
            return 400, problem
        filters = resolve_filters(body["eventFilters"], self._directory)
        if filters.invalid:
            return 400, filters.invalid_error()
        refused = self._permission_problem(filters)
        if refused is not None:
            return 403, refused
        self._unindex(session)
        current.filters = filters
        self._index(session)
        return 200, current.info()

    def _permission_problem(self, filters: FilterSet) -> dict[str, Any] | None:
        """Presence filters need ReadPresence; account-wide and extension-list ones ReadAccounts."""
        needed: list[str] = []
        if filters.account_presence is not None or filters.extension_presence:
            needed.append("ReadPresence")
        if filters.account_presence is not None or filters.extension_list:
            needed.append("ReadAccounts")
        missing = self._auth.lacking(*needed)
        return insufficient_permissions_body(missing) if missing is not None else None

    def _index(self, session: _WsSession) -> None:
        if session.subscription is None:
            return
        filters = session.subscription.filters
        if filters.account_presence is not None:
            self._account_subscribers[session] = filters.account_presence
        for extension_id, detailed in filters.extension_presence.items():
            self._extension_subscribers.setdefault(extension_id, {})[session] = detailed
        if filters.extension_list:
            self._list_subscribers.add(session)

    def _unindex(self, session: _WsSession) -> None:
        if session.subscription is None:
            return
        self._account_subscribers.pop(session, None)
        for extension_id in session.subscription.filters.extension_presence:
            subscribers = self._extension_subscribers.get(extension_id)
            if subscribers is not None:
                subscribers.pop(session, None)
                if not subscribers:
                    del self._extension_subscribers[extension_id]
        self._list_subscribers.discard(session)

    # ---- notifications -------------------------------------------------------------------------

    def publish_presence(self, change: PresenceChange) -> None:
        """Tell every interested subscription; cost is proportional to the subscribers, not N."""
        targets: dict[_WsSession, bool] = dict(self._account_subscribers)
        for session, detailed in self._extension_subscribers.get(change.extension_id, {}).items():
            targets[session] = targets.get(session, False) or detailed
        if not targets:
            return
        bodies: dict[bool, str | None] = {}
        for session, detailed in targets.items():
            if detailed not in bodies:
                bodies[detailed] = self._presence_body(change, detailed)
            body = bodies[detailed]
            if body is None:
                continue
            event = (
                f"/restapi/v1.0/account/{self._directory.account_id}"
                f"/extension/{change.extension_id}/presence"
            )
            if detailed:
                event += "?detailedTelephonyState=true"
            self._deliver(session, event, body)

    def _presence_body(self, change: PresenceChange, detailed: bool) -> str | None:
        """The body as the `presence_bodies` switch says; None if a basic filter saw nothing.

        A basic filter hears of a change only when a presence field changed, a detailed one also
        when only the calls did, whatever the switch.
        """
        if not change.fields and not (detailed and change.active_calls is not None):
            return None
        body: dict[str, Any] = {"extensionId": str(change.extension_id)}
        if self._switches.presence_bodies == "partial":
            body.update(change.fields)
            body["sequence"] = change.sequence
            if detailed and change.active_calls is not None:
                body["activeCalls"] = change.active_calls
                body["totalActiveCalls"] = change.total_active_calls
            return dumps(body)
        state = change.presence
        body.update((name, state[name]) for name in _FULL_BODY_HEAD if name in state)
        if detailed:
            calls = change.active_calls if change.active_calls is not None else change.current_calls
            body["activeCalls"] = calls
        body["sequence"] = change.sequence
        body.update((name, state[name]) for name in _FULL_BODY_TAIL if name in state)
        if detailed:
            body["totalActiveCalls"] = change.total_active_calls
        return dumps(body)

    def publish_extension_event(self, event: ExtensionEvent) -> None:
        if not self._list_subscribers:
            return
        item: dict[str, Any] = {
            "extensionId": str(event.extension_id),
            "eventType": event.event_type,
        }
        if event.hints:
            item["hints"] = list(event.hints)
        body = dumps({"extensions": [item]})
        uri = f"/restapi/v1.0/account/{self._directory.account_id}/extension"
        for session in list(self._list_subscribers):
            self._deliver(session, uri, body)

    def _deliver(self, session: _WsSession, event: str, body_json: str) -> None:
        subscription = session.subscription
        if subscription is None:
            return
        if session.connection is None and not self._recoverable(session):
            self._forget(session)
            return
        notification_id = message_id()
        meta = {
            "type": "ServerNotification",
            "messageId": notification_id,
            "status": 200,
            "headers": {"RCRequestId": request_id()},
            "wsc": session.next_wsc(),
        }
        frame = (
            f'[{dumps(meta)},{{"uuid":"{notification_id}","event":{dumps(event)},'
            f'"timestamp":"{iso_millis()}","subscriptionId":"{subscription.subscription_id}",'
            f'"ownerId":"{session.oauth.owner_id}","body":{body_json}}}]'
        )
        if session.connection is not None:
            session.connection.send(frame)
            self._stats.notifications += 1
        else:
            session.buffer.append(frame)
            self._stats.notifications_buffered += 1
