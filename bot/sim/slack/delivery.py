"""Carries commands, clicks and events to the app (Socket Mode or signed HTTP) and takes replies."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import secrets
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from bot.sim.limits import TimeScale
from bot.sim.slack.payloads import event_callback
from bot.sim.slack.state import ISSUED_MEMORY, AppIdentity, Message, Workspace

log = logging.getLogger(__name__)

# Slack's ack deadline is real time: the client library enforces it, not the simulated clock.
ACK_DEADLINE = 3.0
RESPONSE_URL_USES = 5
RESPONSE_URL_LIFETIME = 30 * 60.0
# How long a scripted command or click waits for the app's posts to its response_url.
DEFAULT_RESPONSE_WAIT = 2.0
# Slack says it retries nearly immediately, after 1 minute and after 5 minutes.
EVENT_RETRY_DELAYS = (1.0, 60.0, 300.0)
# Slack's hello reports roughly five hours before it asks a Socket Mode client to reconnect.
SOCKET_REFRESH_AFTER = 18_060.0
SOCKET_CLOSE_GRACE = 10.0
MAX_SOCKET_CONNECTIONS = 10
HTTP_EVENT_CONCURRENCY = 16

InteractionType = Literal["slash_commands", "interactive"]


@dataclass(slots=True)
class Delivery:
    """One command or click: how it travelled, the ack, and what reached its response_url."""

    via: Literal["socket_mode", "http"]
    ack: dict[str, Any] | None
    http_status: int | None = None
    error: str | None = None
    responses: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "ack": self.ack,
            "responses": self.responses,
            "via": self.via,
            "http_status": self.http_status,
            "error": self.error,
        }


@dataclass(eq=False, slots=True)
class ResponseUrl:
    path: str
    user_id: str
    channel_id: str | None
    created: float
    uses: int = 0
    posts: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


class ResponseUrls:
    """Reply webhooks: 5 uses within 30 (scaled) minutes, every post recorded."""

    def __init__(self, workspace: Workspace, time_scale: TimeScale) -> None:
        self._workspace = workspace
        self._lifetime = time_scale.seconds(RESPONSE_URL_LIFETIME)
        self._urls: OrderedDict[str, ResponseUrl] = OrderedDict()
        self._counter = itertools.count(1)
        self.issued_paths: deque[str] = deque(maxlen=ISSUED_MEMORY)

    def create(
        self, kind: Literal["commands", "actions"], user_id: str, channel_id: str | None
    ) -> ResponseUrl:
        now = time.monotonic()
        while self._urls:
            oldest = next(iter(self._urls.values()))
            if now - oldest.created < self._lifetime:
                break
            self._urls.popitem(last=False)
        team = self._workspace.identity.team_id
        path = f"/{kind}/{team}/{next(self._counter)}/{secrets.token_hex(12)}"
        record = ResponseUrl(path=path, user_id=user_id, channel_id=channel_id, created=now)
        self._urls[path] = record
        self.issued_paths.append(path)
        return record

    async def handle(self, request: web.Request) -> web.Response:
        record = self._urls.get(request.path)
        if record is None or time.monotonic() - record.created >= self._lifetime:
            return web.Response(status=404, text="expired_url")
        if record.uses >= RESPONSE_URL_USES:
            return web.Response(status=404, text="used_url")
        raw = await request.text()
        try:
            if raw.startswith("payload="):
                form = await request.post()
                body = json.loads(str(form["payload"]))
            else:
                body = json.loads(raw)
        except (ValueError, KeyError):
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload")
        if not body.get("text") and not body.get("blocks") and not body.get("delete_original"):
            return web.Response(status=400, text="no_text")
        record.uses += 1
        blocks = body.get("blocks") or []
        post = {
            "text": body.get("text", ""),
            "blocks": blocks,
            "response_type": body.get("response_type", "ephemeral"),
            "replace_original": bool(body.get("replace_original", False)),
            "delete_original": bool(body.get("delete_original", False)),
            "thread_ts": body.get("thread_ts"),
            "ts": self._workspace.next_ts(),
        }
        record.posts.append(post)
        record.arrived.set()
        self._workspace.record_message(
            Message(
                kind="response_url",
                channel=record.channel_id,
                user=record.user_id,
                text=str(post["text"]),
                blocks=list(blocks),
                ts=str(post["ts"]),
                extra={
                    "response_type": post["response_type"],
                    "replace_original": post["replace_original"],
                    "delete_original": post["delete_original"],
                    "is_ephemeral": post["response_type"] != "in_channel",
                },
            )
        )
        return web.json_response({"ok": True})

    @staticmethod
    async def collect(record: ResponseUrl, wait: float, expect: int | None) -> list[dict[str, Any]]:
        """Posts to `record` within `wait` seconds; returns early once `expect` of them arrived."""
        deadline = time.monotonic() + wait
        while expect is None or len(record.posts) < expect:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            record.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(record.arrived.wait(), remaining)
        return list(record.posts)


@dataclass(eq=False, slots=True)
class SocketConnection:
    ws: web.WebSocketResponse
    number: int
    draining: bool = False


@dataclass(slots=True)
class EventItem:
    body: dict[str, Any]
    attempt: int = 0
    reason: str = ""


@dataclass(slots=True)
class PendingAck:
    future: asyncio.Future[dict[str, Any]] | None = None
    event: EventItem | None = None
    timer: asyncio.TimerHandle | None = None


class AppLink:
    """The simulator's side of the app connection: Socket Mode if the app holds one, else HTTP."""

    def __init__(
        self,
        workspace: Workspace,
        time_scale: TimeScale,
        *,
        app_url: str,
        event_subscriptions: Collection[str],
    ) -> None:
        self._workspace = workspace
        self._identity: AppIdentity = workspace.identity
        self._time_scale = time_scale
        self.app_url = app_url.rstrip("/")
        self.event_subscriptions = frozenset(event_subscriptions)
        self.responses = ResponseUrls(workspace, time_scale)
        # Test switches for HTTP delivery: sign with another secret, or shift the timestamp.
        self.signing_secret_override: str | None = None
        self.timestamp_skew = 0.0

        self._tickets: set[str] = set()
        self.issued_tickets: deque[str] = deque(maxlen=ISSUED_MEMORY)
        self._connections: list[SocketConnection] = []
        self._connection_numbers = itertools.count(1)
        self._round_robin = itertools.count()
        self._pending: dict[str, PendingAck] = {}
        self._events: asyncio.Queue[EventItem] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._http_slots = asyncio.Semaphore(HTTP_EVENT_CONCURRENCY)
        self._event_ids = itertools.count(1)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._events = asyncio.Queue(maxsize=50_000)
        self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        self._dispatcher = asyncio.create_task(self._dispatch_events(), name="slack-sim-events")

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for pending in self._pending.values():
            if pending.timer is not None:
                pending.timer.cancel()
            if pending.future is not None and not pending.future.done():
                pending.future.cancel()
        self._pending.clear()
        await self.close_sockets()
        tasks = [*self._tasks, *([self._dispatcher] if self._dispatcher else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._dispatcher = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        def fire() -> None:
            self._timers.discard(handle)
            callback()

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)
        return handle

    # -- Socket Mode ------------------------------------------------------------------------

    def issue_socket_ticket(self) -> str:
        ticket = str(uuid.uuid4())
        self._tickets.add(ticket)
        self.issued_tickets.append(ticket)
        return ticket

    @property
    def socket_connections(self) -> int:
        return sum(1 for connection in self._connections if not connection.draining)

    def _socket(self) -> SocketConnection | None:
        live = [c for c in self._connections if not c.draining and not c.ws.closed]
        if not live:
            return None
        return live[next(self._round_robin) % len(live)]

    async def handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid_ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = SocketConnection(ws=ws, number=next(self._connection_numbers))
        if self.socket_connections >= MAX_SOCKET_CONNECTIONS:
            await self._send_disconnect(connection, "too_many_websockets")
            await ws.close()
            return ws
        self._connections.append(connection)
        refresh_after = self._time_scale.seconds(SOCKET_REFRESH_AFTER)
        refresh = self._later(refresh_after, lambda: self._request_refresh(connection))
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": self.socket_connections,
                    "debug_info": {
                        "host": f"applink-sim-{connection.number}",
                        "build_number": 1,
                        "approximate_connection_time": max(1, int(refresh_after)),
                    },
                    "connection_info": {"app_id": self._identity.app_id},
                }
            )
            async for frame in ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    self._on_socket_text(frame.data)
        finally:
            refresh.cancel()
            self._timers.discard(refresh)
            if connection in self._connections:
                self._connections.remove(connection)
        return ws

    def _on_socket_text(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        pending = self._pending.pop(str(message.get("envelope_id")), None)
        if pending is None:
            return
        payload = message.get("payload")
        ack = payload if isinstance(payload, dict) else {}
        if pending.future is not None and not pending.future.done():
            pending.future.set_result(ack)
        if pending.event is not None:
            if pending.timer is not None:
                pending.timer.cancel()
                self._timers.discard(pending.timer)
            self._workspace.stats.events["acked"] += 1

    async def _send_disconnect(self, connection: SocketConnection, reason: str) -> None:
        connection.draining = True
        with contextlib.suppress(ConnectionError, RuntimeError):
            await connection.ws.send_json(
                {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-sim"}}
            )

    def _request_refresh(self, connection: SocketConnection) -> None:
        async def refresh() -> None:
            await self._send_disconnect(connection, "refresh_requested")
            # The client reconnects by itself; close the old socket if it lingers.
            await asyncio.sleep(max(1.0, self._time_scale.seconds(SOCKET_CLOSE_GRACE)))
            await connection.ws.close()

        self._spawn(refresh(), "slack-sim-socket-refresh")

    async def refresh_sockets(self) -> int:
        """Ask every Socket Mode connection to reconnect, as Slack does periodically."""
        connections = [c for c in self._connections if not c.draining]
        for connection in connections:
            self._request_refresh(connection)
        return len(connections)

    async def close_sockets(self) -> None:
        for connection in list(self._connections):
            await connection.ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
        self._connections.clear()

    # -- interactions (commands and clicks) -------------------------------------------------

    async def deliver_interaction(
        self, kind: InteractionType, payload: dict[str, Any], *, accepts_response_payload: bool
    ) -> Delivery:
        """Send one command or click; wait up to Slack's 3 s for the ack."""
        connection = self._socket()
        if connection is not None:
            envelope_id = str(uuid.uuid4())
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[envelope_id] = PendingAck(future=future)
            envelope = {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": accepts_response_payload,
            }
            try:
                await connection.ws.send_json(envelope)
                ack = await asyncio.wait_for(future, ACK_DEADLINE)
            except TimeoutError:
                return Delivery(via="socket_mode", ack=None, error="operation_timeout")
            except (ConnectionError, RuntimeError) as error:
                return Delivery(via="socket_mode", ack=None, error=f"socket send failed: {error}")
            finally:
                self._pending.pop(envelope_id, None)
            return Delivery(via="socket_mode", ack=ack)

        if kind == "slash_commands":
            body = urlencode(payload)
        else:
            body = urlencode({"payload": json.dumps(payload)})
        status, text, failure = await self._post(body, "application/x-www-form-urlencoded", {})
        if failure is not None:
            return Delivery(via="http", ack=None, http_status=status, error=failure)
        if status != 200:
            return Delivery(
                via="http", ack=None, http_status=status, error=f"HTTP {status}: {text}"
            )
        return Delivery(via="http", ack=_ack_from_body(text), http_status=status)

    async def _post(
        self, body: str, content_type: str, extra_headers: dict[str, str]
    ) -> tuple[int | None, str, str | None]:
        """POST a signed request to the app: (status, body, failure reason or None)."""
        assert self._session is not None, "simulator not started"
        timestamp = str(int(time.time() + self.timestamp_skew))
        secret = self.signing_secret_override or self._identity.signing_secret
        digest = hmac.new(
            secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256
        ).hexdigest()
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": f"v0={digest}",
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            **extra_headers,
        }
        try:
            async with self._session.post(
                f"{self.app_url}/slack/events",
                data=body.encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=ACK_DEADLINE),
                allow_redirects=False,
            ) as response:
                return response.status, await response.text(), None
        except TimeoutError:
            return None, "", "http_timeout"
        except aiohttp.ClientError as error:
            return None, "", f"connection_failed: {error}"

    # -- Events API -------------------------------------------------------------------------

    def emit_event(self, event: dict[str, Any]) -> str | None:
        """Queue one event for the app (if it subscribes to that type); returns its event_id."""
        if event.get("type") not in self.event_subscriptions:
            self._workspace.stats.events["unsubscribed"] += 1
            return None
        event_id = f"Ev{int(time.time()):010d}{next(self._event_ids):08d}"
        item = EventItem(body=event_callback(self._identity, event, event_id))
        self._enqueue(item)
        return event_id

    def _enqueue(self, item: EventItem) -> None:
        if self._events is None:
            return
        try:
            self._events.put_nowait(item)
        except asyncio.QueueFull:
            self._workspace.stats.events["dropped"] += 1

    async def _dispatch_events(self) -> None:
        assert self._events is not None
        while True:
            item = await self._events.get()
            connection = self._socket()
            if connection is not None:
                await self._send_event_over_socket(connection, item)
            else:
                await self._http_slots.acquire()
                self._spawn(self._post_event(item), "slack-sim-event-http")

    async def _send_event_over_socket(self, connection: SocketConnection, item: EventItem) -> None:
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": "events_api",
            "payload": item.body,
            "accepts_response_payload": False,
            "retry_attempt": item.attempt,
            "retry_reason": item.reason,
        }
        pending = PendingAck(event=item)
        self._pending[envelope_id] = pending

        def unacked() -> None:
            if self._pending.pop(envelope_id, None) is not None:
                self._retry(item, "timeout")

        pending.timer = self._later(ACK_DEADLINE, unacked)
        self._workspace.stats.events["sent"] += 1
        try:
            await connection.ws.send_json(envelope)
        except (ConnectionError, RuntimeError):
            self._pending.pop(envelope_id, None)
            pending.timer.cancel()
            self._timers.discard(pending.timer)
            self._retry(item, "connection_failed")

    async def _post_event(self, item: EventItem) -> None:
        try:
            headers = {}
            if item.attempt:
                headers = {
                    "X-Slack-Retry-Num": str(item.attempt),
                    "X-Slack-Retry-Reason": item.reason,
                }
            self._workspace.stats.events["sent"] += 1
            status, _, error = await self._post(json.dumps(item.body), "application/json", headers)
            if error is not None:
                self._retry(item, error.split(":")[0])
            elif status is not None and 200 <= status < 300:
                self._workspace.stats.events["acked"] += 1
            else:
                self._retry(item, "http_error")
        finally:
            self._http_slots.release()

    def _retry(self, item: EventItem, reason: str) -> None:
        if item.attempt >= len(EVENT_RETRY_DELAYS):
            self._workspace.stats.events["failed"] += 1
            return
        self._workspace.stats.events["retried"] += 1
        retry = EventItem(body=item.body, attempt=item.attempt + 1, reason=reason)
        delay = self._time_scale.seconds(EVENT_RETRY_DELAYS[item.attempt])
        self._later(delay, lambda: self._enqueue(retry))


def _ack_from_body(text: str) -> dict[str, Any]:
    """An HTTP ack body: empty means a bare ack, JSON is a message, other text is message text."""
    if not text.strip():
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"text": text}
    return parsed if isinstance(parsed, dict) else {"text": text}
