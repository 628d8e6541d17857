"""PostgreSQL LISTEN/NOTIFY between replicas: batched, per schema, repaired after a reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import asyncpg

from bot.store.engine import describe, parse_url

log = logging.getLogger(__name__)

PAYLOAD_LIMIT: Final = 7_900
"""Bytes of one NOTIFY payload; the server refuses 8,000 and more."""
MAX_QUEUED: Final = 100_000
"""Messages waiting to be sent (two snapshots of 50,000 extensions, ~15 MB); beyond it the
oldest go and receivers are told to re-read the store."""
MAX_RECEIVED: Final = 2_000
"""Payloads received and not yet handled (at most ~16 MB); beyond it they are all dropped and
this replica re-reads the store instead."""
LINGER: Final = 0.05
"""Seconds the sender waits for more messages to join a batch: without it, 2,000 changes a
second spread evenly would each leave in a NOTIFY of its own."""
BATCHES_PER_ROUND: Final = 100
"""NOTIFYs sent in one round trip."""
CONNECT_TIMEOUT: Final = 10.0
PING_INTERVAL: Final = 5.0
"""Seconds of quiet after which the connection is checked: a server that vanished without
closing the socket would otherwise leave this replica listening to nothing, forever."""
PING_TIMEOUT: Final = 5.0
BACKOFF_FIRST: Final = 0.2
BACKOFF_MAX: Final = 10.0
STOP_TIMEOUT: Final = 3.0
"""Seconds `stop` gives the sender to send what is queued."""
WIRE_VERSION: Final = 1
_TOPIC: Final = re.compile(r"[a-z][a-z0-9_.]{0,39}")
_DIALECT_ONLY: Final = ("prepared_statement_cache_size", "prepared_statement_name_func")
"""Options SQLAlchemy's asyncpg dialect takes from the URL for itself, not for asyncpg."""
_FAILURES: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)

Handler = Callable[[Any, "Envelope"], Awaitable[None]]
Callback = Callable[[], Awaitable[None]]


class Subscriber(Protocol):
    """The receiving half of `ReplicaBus`, as the follower-side views take it."""

    def subscribe(self, topic: str, handler: Handler) -> None: ...
    def on_connected(self, callback: Callback) -> None: ...


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who sent a message: the replica, and its epoch then (None: not a leader)."""

    topic: str
    sender: str
    epoch: int | None


class _Resync:
    """A marker among received payloads: messages may have been missed here."""


_RESYNC: Final = _Resync()


@dataclass(slots=True)
class BusStats:
    sent_messages: int = 0
    sent_notifies: int = 0
    received_messages: int = 0
    dropped_outgoing: int = 0
    """Messages dropped because the send queue was full or one was too large."""
    dropped_incoming: int = 0
    """Payloads dropped because handlers fell behind."""
    malformed: int = 0
    stale: int = 0
    """Messages ignored because their sender's epoch is older than one already seen."""
    connects: int = 0


class ReplicaBus:
    """Messages between the replicas of one deployment, over PostgreSQL's LISTEN/NOTIFY.

    The bus talks to asyncpg directly, on one connection of its own, rather than borrowing one
    from the store's SQLAlchemy pool: a LISTEN lasts as long as its session, so the connection
    must never go back to a pool (nor be recycled or pre-pinged by one), and asyncpg says at once
    when it dies (a termination listener) and hands over notifications as they arrive. The URL
    is read the way the store reads it (`parse_url`, and the dialect's own translation into
    asyncpg's arguments), so TLS and other options in DATABASE_URL apply here too.

    Rules:
    - one channel per schema: NOTIFY is database-wide, and replicas of another deployment (or
      parallel tests) in other schemas of the same database must not hear this one. The channel
      is named after a hash of `current_schema()`, read on every connect;
    - `publish` never waits: messages queue (at most MAX_QUEUED; when full the oldest is dropped
      and the next NOTIFY tells receivers to re-read the store), and the task in `run` sends them
      every LINGER seconds as few NOTIFYs as fit under PAYLOAD_LIMIT bytes;
    - a replica does not hear its own messages;
    - a message carrying an epoch older than the newest epoch this bus has seen (or its own) is
      ignored: it comes from a deposed leader that woke up late;
    - NOTIFYs sent while a replica is not listening are lost for it, so after every (re)connect,
      and whenever messages were dropped on either side, the `on_connected` callbacks run, before
      any message received after them: followers re-read the store there;
    - a malformed payload costs one log line and is dropped; a failing handler costs one log
      line and the next handler still runs.
    """

    def __init__(
        self,
        database_url: str,
        *,
        replica_id: str,
        epoch: Callable[[], int | None],
        linger: float = LINGER,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        url = parse_url(database_url)
        if url.get_backend_name() != "postgresql":
            raise ValueError("the replica bus needs PostgreSQL; SQLite runs one process")
        args, options = url.get_dialect()().create_connect_args(url)
        for name in _DIALECT_ONLY:
            options.pop(name, None)
        self._connect_args: tuple[Any, ...] = tuple(args)
        self._connect_options: dict[str, Any] = dict(options)
        self._location = describe(url)
        self._replica_id = replica_id
        self._sender_json = json.dumps(replica_id)
        self._epoch = epoch
        self._linger = linger
        self._max_queued = max_queued
        self._handlers: dict[str, list[Handler]] = {}
        self._on_connected: list[Callback] = []
        self._outbox: deque[tuple[int | None, str]] = deque()
        self._outbox_gap = False
        self._sent_number = 0
        self._queued = asyncio.Event()
        self._inbox: deque[str | _Resync] = deque()
        self._received = asyncio.Event()
        self._channel: str | None = None
        self._connected = False
        self._down_since: float = time.monotonic()
        self._down_since_wall: datetime | None = datetime.now(UTC)
        self._newest_epoch: int | None = None
        self._stopping = asyncio.Event()
        self._running = False
        self._stopped = asyncio.Event()
        self.stats = BusStats()

    # ----------------------------------------------------------------------------- wiring

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call `handler(message, envelope)` for each message on `topic` from another replica."""
        _check_topic(topic)
        self._handlers.setdefault(topic, []).append(handler)

    def on_connected(self, callback: Callback) -> None:
        """Call `callback()` after every (re)connect and whenever messages may have been lost."""
        self._on_connected.append(callback)

    # ----------------------------------------------------------------------------- state

    @property
    def replica_id(self) -> str:
        return self._replica_id

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def disconnected_since(self) -> datetime | None:
        """When the bus last lost (or had not yet made) its connection; None while connected."""
        return None if self._connected else self._down_since_wall

    def stale_for(self) -> float:
        """Seconds this replica may have missed messages for: 0 while connected."""
        return 0.0 if self._connected else time.monotonic() - self._down_since

    @property
    def newest_epoch(self) -> int | None:
        return self._newest_epoch

    @property
    def queued(self) -> int:
        return len(self._outbox)

    # ----------------------------------------------------------------------------- sending

    def publish(self, topic: str, message: Any) -> None:
        """Queue `message` (anything JSON can carry) for every other replica; never waits."""
        _check_topic(topic)
        item = f'["{topic}",{json.dumps(message, separators=(",", ":"))}]'
        if len(item.encode()) > PAYLOAD_LIMIT - 200:
            self.stats.dropped_outgoing += 1
            log.error("a message on %s is too large for a NOTIFY; dropped", topic)
            return
        if len(self._outbox) >= self._max_queued:
            self._outbox.popleft()
            self._outbox_gap = True
            self.stats.dropped_outgoing += 1
            if self.stats.dropped_outgoing % 1000 == 1:
                log.error(
                    "the replica bus cannot send as fast as messages come; %d dropped, "
                    "followers will re-read the store",
                    self.stats.dropped_outgoing,
                )
        self._outbox.append((self._epoch(), item))
        self._queued.set()

    def _take_payloads(self) -> tuple[list[str], list[tuple[int | None, str]]]:
        """Up to BATCHES_PER_ROUND payloads from the head of the queue, and what they hold."""
        payloads: list[str] = []
        taken: list[tuple[int | None, str]] = []
        while self._outbox and len(payloads) < BATCHES_PER_ROUND:
            epoch = self._outbox[0][0]
            # The number makes every payload unique: PostgreSQL delivers identical payloads on
            # one channel within one transaction once, which would drop a state that repeats.
            self._sent_number += 1
            head = (
                f'{{"v":{WIRE_VERSION},"s":{self._sender_json},"n":{self._sent_number},'
                f'"e":{"null" if epoch is None else epoch},'
                f'"g":{1 if self._outbox_gap and not payloads else 0},"m":['
            )
            size = len(head.encode()) + 2
            items: list[str] = []
            # One epoch per envelope: a batch never mixes what was sent before and after a
            # takeover, so a receiver can drop the old leader's part whole.
            while self._outbox and self._outbox[0][0] == epoch:
                item_size = len(self._outbox[0][1].encode()) + 1
                if items and size + item_size > PAYLOAD_LIMIT:
                    break
                taken.append(self._outbox.popleft())
                items.append(taken[-1][1])
                size += item_size
            payloads.append(head + ",".join(items) + "]}")
        return payloads, taken

    async def _send(self, conn: asyncpg.Connection, lock: asyncio.Lock, channel: str) -> None:
        """Send what is queued, in batches, until stopped and nothing is left."""
        while True:
            if not self._outbox:
                if self._stopping.is_set():
                    return
                self._queued.clear()
                await self._queued.wait()
                continue
            if self._linger > 0 and not self._stopping.is_set():
                await asyncio.sleep(self._linger)
            while self._outbox:
                gap = self._outbox_gap
                payloads, taken = self._take_payloads()
                self._outbox_gap = False
                try:
                    async with lock:
                        await conn.executemany(
                            "SELECT pg_notify($1, $2)", [(channel, p) for p in payloads]
                        )
                except BaseException:
                    # Not sent (executemany is one transaction): they go on the next
                    # connection. A repeat would be harmless, as every message is a state.
                    self._outbox.extendleft(reversed(taken))
                    self._outbox_gap = gap
                    while len(self._outbox) > self._max_queued:
                        self._outbox.popleft()
                        self._outbox_gap = True
                    raise
                self.stats.sent_notifies += len(payloads)
                self.stats.sent_messages += len(taken)

    # ----------------------------------------------------------------------------- receiving

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if len(self._inbox) >= MAX_RECEIVED:
            self.stats.dropped_incoming += len(self._inbox)
            self._inbox.clear()
            self._inbox.append(_RESYNC)
            log.warning("replica bus handlers fell behind; re-reading the store instead")
        self._inbox.append(payload)
        self._received.set()

    async def _dispatch(self) -> None:
        """Hand each received message to its topic's handlers, in the order they came."""
        while True:
            await self._received.wait()
            self._received.clear()
            while self._inbox:
                payload = self._inbox.popleft()
                if isinstance(payload, _Resync):
                    await self._resync()
                    continue
                await self._deliver(payload)

    async def _resync(self) -> None:
        for callback in self._on_connected:
            try:
                await callback()
            except Exception:
                log.exception("a replica bus on_connected callback failed; continuing")

    async def _deliver(self, payload: str) -> None:
        decoded = _decode(payload)
        if decoded is None:
            self.stats.malformed += 1
            log.warning("dropped a malformed replica bus payload (%d bytes)", len(payload))
            return
        sender, epoch, gap, messages = decoded
        if sender == self._replica_id:
            return
        if epoch is not None:
            own = self._epoch()
            newest = max(e for e in (self._newest_epoch, own, epoch) if e is not None)
            self._newest_epoch = newest
            if epoch < newest:
                self.stats.stale += len(messages)
                return
        if gap:
            await self._resync()
        for topic, message in messages:
            self.stats.received_messages += 1
            envelope = Envelope(topic, sender, epoch)
            for handler in self._handlers.get(topic, ()):
                try:
                    await handler(message, envelope)
                except Exception:
                    log.exception("a replica bus handler for %s failed; continuing", topic)

    # ----------------------------------------------------------------------------- the task

    async def run(self) -> None:
        """Keep the LISTEN connection, reconnecting with backoff; returns after `stop`."""
        self._running = True
        self._stopped.clear()
        dispatcher = asyncio.create_task(self._dispatch(), name="replica-bus-dispatch")
        delay = BACKOFF_FIRST
        try:
            while not self._stopping.is_set():
                try:
                    conn = await self._connect()
                except _FAILURES as exc:
                    log.warning(
                        "replica bus cannot reach %s (%s); retrying in %.1f s",
                        self._location,
                        type(exc).__name__,
                        delay,
                    )
                    await self._pause(delay)
                    delay = min(delay * 2, BACKOFF_MAX)
                    continue
                delay = BACKOFF_FIRST
                try:
                    await self._session(conn)
                except Exception as exc:  # whatever broke the session, the next one starts clean
                    log.warning("replica bus lost %s (%s)", self._location, type(exc).__name__)
                finally:
                    self._mark_down()
                    await _close(conn)
                if not self._stopping.is_set():
                    await self._pause(delay)
        finally:
            dispatcher.cancel()
            await asyncio.gather(dispatcher, return_exceptions=True)
            self._running = False
            self._stopped.set()

    async def stop(self) -> None:
        """Send what is queued (for up to STOP_TIMEOUT s), close the connection, end `run`."""
        self._stopping.set()
        self._queued.set()  # wakes the sender, which ends once the queue is empty
        if self._running:
            await self._stopped.wait()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _connect(self) -> asyncpg.Connection:
        options = dict(self._connect_options)
        settings = {**options.pop("server_settings", {}), "application_name": "rcstatus-bus"}
        conn: asyncpg.Connection = await asyncpg.connect(
            *self._connect_args, **options, timeout=CONNECT_TIMEOUT, server_settings=settings
        )
        try:
            schema = await conn.fetchval("SELECT coalesce(current_schema(), '')")
            self._channel = channel_for(str(schema))
            await conn.add_listener(self._channel, self._on_notify)
        except BaseException:
            await _close(conn)
            raise
        return conn

    async def _session(self, conn: asyncpg.Connection) -> None:
        assert self._channel is not None
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        self._connected = True
        self._down_since_wall = None
        self.stats.connects += 1
        log.info("replica bus listening on %s", self._location)
        self._inbox.append(_RESYNC)
        self._received.set()
        lock = asyncio.Lock()
        tasks = [
            asyncio.create_task(self._send(conn, lock, self._channel), name="replica-bus-send"),
            asyncio.create_task(self._ping(conn, lock), name="replica-bus-ping"),
            asyncio.create_task(lost.wait(), name="replica-bus-lost"),
            asyncio.create_task(self._stop_deadline(), name="replica-bus-deadline"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

    async def _stop_deadline(self) -> None:
        """Return STOP_TIMEOUT s after `stop`, if the sender has not finished by then."""
        await self._stopping.wait()
        await asyncio.sleep(STOP_TIMEOUT)

    async def _ping(self, conn: asyncpg.Connection, lock: asyncio.Lock) -> None:
        while True:
            await asyncio.sleep(PING_INTERVAL)
            async with lock:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), PING_TIMEOUT)

    def _mark_down(self) -> None:
        if self._connected:
            self._connected = False
            self._down_since = time.monotonic()
            self._down_since_wall = datetime.now(UTC)


def channel_for(schema: str) -> str:
    """The NOTIFY channel of the replicas whose tables live in `schema`."""
    return "rcstatus_" + hashlib.sha256(schema.encode()).hexdigest()[:16]


def _check_topic(topic: str) -> None:
    if not _TOPIC.fullmatch(topic):
        raise ValueError("a topic is 1-40 of a-z, 0-9, '_' and '.', starting with a letter")


def _decode(payload: str) -> tuple[str, int | None, bool, list[tuple[str, Any]]] | None:
    """The envelope's sender, epoch, gap flag and (topic, message) pairs; None if malformed."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("v") != WIRE_VERSION:
        return None
    sender, epoch, gap, items = body.get("s"), body.get("e"), body.get("g"), body.get("m")
    if not isinstance(sender, str) or not isinstance(items, list):
        return None
    if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool)):
        return None
    messages: list[tuple[str, Any]] = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            return None
        messages.append((item[0], item[1]))
    return sender, epoch, bool(gap), messages


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 2.0)
    except Exception:  # a dead connection may fail to close politely
        conn.terminate()
