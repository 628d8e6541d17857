"""The live event stream, GET /api/v1/events: availability changes as Server-Sent Events.

The wire format (WHATWG HTML, "Server-sent events"): the stream opens with a `retry:` hint
and a comment; each change is `id: N`, `event: availability.changed` and one `data:` line of
JSON, the same envelope a webhook delivers (`type`, `timestamp`, `data`: the person as
GET /people/{ref} shows them, plus `previous`), then a blank line. Idle streams get a
`: keep-alive` comment every heartbeat.

Catching up: a client that sends `Last-Event-ID: N` (or `?last_event_id=N`, for browsers'
EventSource, which cannot set headers; the header wins, because EventSource reconnects with
the same URL and the newest id in the header) first gets every kept change after N, then the
live ones, none twice. The log keeps an hour; when it no longer reaches back to N, a
`stream.gap` event says so before the replay, and the client should re-read GET /people.
Without an id the stream starts with the next change.

A stream ends when the bot stops, when its key is revoked (checked at each heartbeat), when
its client is too slow to keep up (its queue overflowed; it reconnects with Last-Event-ID and
loses nothing) or when its client goes away.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from bot.api.errors import ApiError
from bot.api.events import SUBSCRIBER_QUEUE, AvailabilityEvent, AvailabilityFeed, Subscription
from bot.api.guard import ApiGuard
from bot.api.keys import ApiKeys, Scope
from bot.api.people import rfc3339
from bot.store import StoreError

log = logging.getLogger(__name__)

EVENTS_PATH: Final = "/events"
GAP_EVENT: Final = "stream.gap"
LAST_ID_PARAM: Final = "last_event_id"
RETRY_MS: Final = 3000
"""How long a disconnected EventSource waits before it reconnects."""
_LAST_ID: Final = re.compile(r"[0-9]{1,18}")
"""A non-negative integer that fits the database's ids; nothing else is an id of ours."""
DISCONNECT_POLL: Final = 1.0
"""aiohttp tells a handler nothing when its client leaves, so a stream looks this often;
otherwise a gone client would hold its slot (and its key's) until the next heartbeat."""
HEADERS: Final = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    # nginx buffers responses unless told not to; buffered events arrive late and in bursts.
    "X-Accel-Buffering": "no",
}


@dataclass(frozen=True, slots=True)
class StreamLimits:
    heartbeat: float = 15.0
    """Seconds of silence before a `: keep-alive` comment; also how often keys are checked."""
    max_streams: int = 1000
    per_key: int = 10
    write_timeout: float = 30.0
    """A client that takes longer than this to accept one write is dropped."""
    queue: int = SUBSCRIBER_QUEUE
    """Live events held for one client; more and the client is too slow, so it is closed."""


class _Ended(Exception):
    """The stream is over (its client left, or a write took too long)."""


class _Stream:
    """One open stream: what shutdown needs to end it at once."""

    __slots__ = ("key_id", "request", "subscription", "writing")

    def __init__(self, key_id: str, request: web.Request, subscription: Subscription) -> None:
        self.key_id = key_id
        self.request = request
        self.subscription = subscription
        self.writing = False

    def gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    def abort(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.abort()


class EventStream:
    """Serves GET /events: authorizes, bounds, replays what a client missed, then streams."""

    def __init__(
        self,
        *,
        guard: ApiGuard,
        keys: ApiKeys,
        feed: AvailabilityFeed,
        limits: StreamLimits = StreamLimits(),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._guard = guard
        self._keys = keys
        self._feed = feed
        self._limits = limits
        self._clock = clock
        self._wall_clock = wall_clock
        self._streams: set[_Stream] = set()
        self._per_key: Counter[str] = Counter()
        self._key_checked: dict[str, float] = {}
        self._closing = False

    @property
    def open(self) -> int:
        return len(self._streams)

    def install(self, app: web.Application) -> None:
        """Add the route, and end every stream when the app shuts down: aiohttp waits for
        open handlers (a minute by default) before it cancels them, and a stream never ends."""
        # No HEAD: it would open a stream whose body nobody reads.
        app.router.add_get(EVENTS_PATH, self.handle, allow_head=False)
        app.on_shutdown.append(self._on_shutdown)

    async def _on_shutdown(self, _app: web.Application) -> None:
        self.close()

    def close(self) -> None:
        """End every stream now, and refuse new ones."""
        self._closing = True
        for stream in self._streams:
            stream.subscription.offer(None)  # wakes a stream waiting for the next event
            if stream.writing:
                # Stuck on a client that stopped reading: nothing we send will reach it.
                stream.abort()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        record = await self._guard.authorize(request, Scope.AVAILABILITY_READ)
        last_id = _last_event_id(request)
        if self._closing:
            raise ApiError(503, "unavailable", "The bot is stopping; reconnect shortly.", _RETRY)
        if len(self._streams) >= self._limits.max_streams:
            raise ApiError(503, "busy", "Too many event streams are open; retry shortly.", _RETRY)
        if self._per_key[record.id] >= self._limits.per_key:
            raise ApiError(
                429,
                "too_many_streams",
                f"This API key holds {self._limits.per_key} event streams open already.",
                _RETRY,
            )
        # authorize() checked this header; the key is kept to check it again at each heartbeat.
        key = request.headers["Authorization"].partition(" ")[2].strip()
        # Subscribed before the backlog is read, so no change falls between the two.
        stream = _Stream(record.id, request, self._feed.subscribe(self._limits.queue))
        self._streams.add(stream)
        self._per_key[record.id] += 1
        response = web.StreamResponse(headers=HEADERS)
        try:
            await response.prepare(request)
            await self._serve(stream, response, key, last_id)
        except (_Ended, ConnectionError):
            pass
        except Exception:
            # The status line is sent: the error shape cannot follow it, so the stream just ends.
            log.exception("an event stream failed")
        finally:
            self._feed.unsubscribe(stream.subscription)
            self._streams.discard(stream)
            self._per_key[record.id] -= 1
            if self._per_key[record.id] <= 0:
                del self._per_key[record.id]
                self._key_checked.pop(record.id, None)
        return response

    async def _serve(
        self, stream: _Stream, response: web.StreamResponse, key: str, last_id: int | None
    ) -> None:
        limits = self._limits

        async def send(text: str) -> None:
            stream.writing = True
            try:
                async with asyncio.timeout(limits.write_timeout):
                    await response.write(text.encode())
            except TimeoutError:
                stream.abort()
                raise _Ended from None
            finally:
                stream.writing = False

        await send(f"retry: {RETRY_MS}\n: rcstatus availability stream\n\n")
        sent = 0  # the newest id already sent: a live event replayed too is not sent twice
        if last_id is not None:
            gap = await self._gap(last_id)
            if gap is not None:
                await send(gap)
            async for missed in self._feed.replay(last_id):
                if self._closing:
                    return
                await send(_frame(missed))
                sent = missed.id
        now = self._clock()
        quiet_since = now
        next_check = now + limits.heartbeat
        while not self._closing:
            due = min(quiet_since + limits.heartbeat, next_check)
            event = await stream.subscription.next(min(max(0.0, due - now), DISCONNECT_POLL))
            now = self._clock()
            if event is not None:
                if event.id > sent:
                    await send(_frame(event))
                    sent = event.id
                    quiet_since = now
            elif self._closing or stream.gone():
                return
            elif stream.subscription.overflowed:
                await send(": too slow to keep up; reconnect with Last-Event-ID\n\n")
                return
            # Checked whether events flow or not: a busy stream must stop on revocation too.
            if now >= next_check:
                if not await self._still_valid(stream.key_id, key):
                    await send(": this API key was revoked\n\n")
                    return
                next_check = now + limits.heartbeat
            if now - quiet_since >= limits.heartbeat:
                await send(": keep-alive\n\n")
                quiet_since = now

    async def _still_valid(self, key_id: str, key: str) -> bool:
        """Whether the key still works; each key is read at most once per half heartbeat, however
        many streams it holds. A database that cannot answer keeps the stream until it can."""
        now = self._clock()
        if now - self._key_checked.get(key_id, -float("inf")) < self._limits.heartbeat / 2:
            return True
        try:
            record = await self._keys.authenticate(key)
        except StoreError:
            return True
        if record is None:
            return False
        self._key_checked[key_id] = now
        return True

    async def _gap(self, last_id: int) -> str | None:
        """The `stream.gap` event, when the kept log no longer reaches back to `last_id`.

        It may be said of a change that was only followed by quiet: ids need not be
        consecutive, so "may have missed" is as much as the log can tell.
        """
        if last_id == 0:
            return None
        oldest = await self._feed.since(0, 1)
        oldest_id = oldest[0].id if oldest else None
        if oldest_id is not None and oldest_id <= last_id + 1:
            return None
        at = datetime.fromtimestamp(self._wall_clock(), UTC)
        body = {
            "type": GAP_EVENT,
            "timestamp": rfc3339(at),
            "data": {"last_event_id": last_id, "oldest_event_id": oldest_id},
        }
        return f"event: {GAP_EVENT}\ndata: {_json(body)}\n\n"


_RETRY: Final = {"Retry-After": "1"}


def _frame(event: AvailabilityEvent) -> str:
    return f"id: {event.id}\nevent: {event.envelope()['type']}\ndata: {_json(event.envelope())}\n\n"


def _json(body: object) -> str:
    # json.dumps escapes every line break, so the data is always one `data:` line.
    return json.dumps(body, separators=(",", ":"))


def _last_event_id(request: web.Request) -> int | None:
    header = request.headers.get("Last-Event-ID")
    query = request.query.get(LAST_ID_PARAM)
    for raw in (query, header):
        if raw is not None and raw != "" and not _LAST_ID.fullmatch(raw):
            raise ApiError(
                400,
                "invalid_request",
                "Last-Event-ID (or last_event_id) must be an event id: a whole number, 0 or more.",
            )
    # EventSource sends no header rather than an empty one; an empty one means the same.
    chosen = header or query
    return int(chosen) if chosen else None
